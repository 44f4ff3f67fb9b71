// What a Node.js service or notebook does through node-postgres (pg), printed as one
// JSON object for tests/e2e/pg.rs to check. Each step records its answer or its error.
//
//   PGHOST=127.0.0.1 PGPORT=… PGUSER=… PGPASSWORD=… node pg_probe.js
//
// With the argument `escapes`, it runs instead each statement of the file named by
// ESCAPES (one per line) as a simple query and as a named prepared statement, and
// prints the SQLSTATE each was refused with ("ran" if it was not).
const fs = require("fs");
const { Client } = require("pg");

async function escapes() {
  const client = new Client({ database: "assay" });
  await client.connect();
  const statements = fs.readFileSync(process.env.ESCAPES, "utf8").split("\n").filter((l) => l);
  const outcome = async (query) => {
    try {
      await client.query(query);
      return "ran";
    } catch (e) {
      return e.code || String(e.message);
    }
  };
  const out = { simple: [], prepared: [] };
  for (const [i, text] of statements.entries()) {
    out.simple.push(await outcome(text));
    out.prepared.push(await outcome({ name: `escape-${i}`, text }));
  }
  out.after = String((await client.query("SELECT count(*) AS n FROM styles")).rows[0].n);
  await client.end();
  console.log(JSON.stringify(out));
}

async function main() {
  const client = new Client({ database: "assay" });
  await client.connect();
  const out = {};
  const step = async (name, run) => {
    try {
      out[name] = await run();
    } catch (e) {
      out[name] = { error: e.code || String(e.message) };
    }
  };
  // Parameters (extended protocol, untyped parameters inferred by the server).
  await step("dear", async () => {
    const r = await client.query(
      "SELECT style_id, list_price FROM styles WHERE list_price >= $1 ORDER BY style_id",
      [40.0]
    );
    return r.rows.map((row) => [row.style_id, row.list_price]);
  });
  // A named prepared statement: parsed once, then bound and run again.
  await step("named", async () => {
    const counts = [];
    for (const price of [20.0, 40.0, 20.0, 40.0]) {
      const r = await client.query({
        name: "count-above",
        text: "SELECT count(*) AS n FROM styles WHERE list_price > $1 AND category = $2",
        values: [price, "dresses"],
      });
      counts.push(String(r.rows[0].n));
    }
    return counts;
  });
  // Typed values: a timestamptz arrives as a Date, an int as a number.
  await step("typed", async () => {
    const r = await client.query(
      "SELECT style_id, launch_at, lead_time_days FROM styles ORDER BY style_id LIMIT 2"
    );
    return r.rows.map((row) => [
      row.style_id,
      String(Math.floor(row.launch_at.getTime() / 1000)),
      typeof row.lead_time_days,
    ]);
  });
  await step("unknown_table", async () => {
    await client.query("SELECT * FROM no_such_table WHERE 1 = $1", [1]);
    return "ran";
  });
  await step("refused", async () => {
    await client.query("INSERT INTO styles SELECT * FROM styles WHERE list_price > $1", [1]);
    return "ran";
  });
  // The connection goes on after the errors.
  await step("after", async () => {
    const r = await client.query("SELECT count(*) AS n FROM styles");
    return String(r.rows[0].n);
  });
  await client.end();
  console.log(JSON.stringify(out));
}

(process.argv[2] === "escapes" ? escapes() : main()).catch((e) => {
  console.error(e);
  process.exit(1);
});
