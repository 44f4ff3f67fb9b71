// What a JDBC tool (DBeaver, DataGrip, Tableau, Metabase) does on connecting to assay
// through pgjdbc, printed as one JSON object for tests/e2e/pg.rs to check. Each step
// records its answer or its error; none stops the others.
//
//   JDBC_URL=jdbc:postgresql://127.0.0.1:PORT/assay PGUSER=… PGPASSWORD=… \
//     java -cp /usr/share/java/postgresql.jar:. JdbcProbe
//
// With the argument `escapes`, it runs instead each statement of the file named by
// ESCAPES (one per line) over the simple query protocol and as a server-prepared
// statement, and prints the SQLSTATE each was refused with ("ran" if it was not).

import java.sql.*;
import java.util.*;

public class JdbcProbe {
    interface Step { String run() throws Exception; }

    static String quote(String s) {
        if (s == null) return "null";
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\') b.append('\\').append(c);
            else if (c < 0x20) b.append(' ');
            else b.append(c);
        }
        return b.append('"').toString();
    }

    static String list(List<String> items) {
        return "[" + String.join(",", items) + "]";
    }

    static void step(StringBuilder out, String name, Step s) {
        String value;
        try {
            value = s.run();
        } catch (Exception e) {
            value = "{\"error\":" + quote(e.getMessage()) + "}";
        }
        if (out.length() > 1) out.append(",");
        out.append(quote(name)).append(":").append(value);
    }

    static List<String> column(ResultSet r, String name) throws SQLException {
        List<String> values = new ArrayList<>();
        try (r) {
            while (r.next()) values.add(quote(r.getString(name)));
        }
        return values;
    }

    static Properties login() {
        Properties login = new Properties();
        login.setProperty("user", System.getenv("PGUSER"));
        login.setProperty("password", System.getenv("PGPASSWORD"));
        return login;
    }

    static String sqlState(SQLException e) {
        return quote(e.getSQLState() == null ? e.getMessage() : e.getSQLState());
    }

    static void escapes() throws Exception {
        List<String> statements = java.nio.file.Files.readAllLines(java.nio.file.Path.of(System.getenv("ESCAPES")));
        Properties simpleLogin = login();
        simpleLogin.setProperty("preferQueryMode", "simple");
        Properties preparedLogin = login();
        // Named on the server from the first execution.
        preparedLogin.setProperty("prepareThreshold", "1");
        List<String> simple = new ArrayList<>(), prepared = new ArrayList<>();
        String after;
        try (Connection s = DriverManager.getConnection(System.getenv("JDBC_URL"), simpleLogin);
             Connection p = DriverManager.getConnection(System.getenv("JDBC_URL"), preparedLogin)) {
            for (String sql : statements) {
                try (Statement st = s.createStatement()) {
                    st.execute(sql);
                    simple.add(quote("ran"));
                } catch (SQLException e) {
                    simple.add(sqlState(e));
                }
                try (PreparedStatement ps = p.prepareStatement(sql)) {
                    ps.execute();
                    prepared.add(quote("ran"));
                } catch (SQLException e) {
                    prepared.add(sqlState(e));
                }
            }
            try (Statement st = p.createStatement(); ResultSet r = st.executeQuery("SELECT count(*) FROM styles")) {
                r.next();
                after = quote(String.valueOf(r.getLong(1)));
            }
        }
        System.out.println("{\"simple\":" + list(simple) + ",\"prepared\":" + list(prepared)
                + ",\"after\":" + after + "}");
    }

    public static void main(String[] args) throws Exception {
        if (args.length > 0 && args[0].equals("escapes")) {
            escapes();
            return;
        }
        Properties login = login();
        StringBuilder out = new StringBuilder("{");
        try (Connection c = DriverManager.getConnection(System.getenv("JDBC_URL"), login)) {
            DatabaseMetaData md = c.getMetaData();
            step(out, "product", () -> quote(md.getDatabaseProductName() + " " + md.getDatabaseProductVersion()));
            step(out, "schemas", () -> list(column(md.getSchemas(), "TABLE_SCHEM")));
            step(out, "tables", () -> list(column(md.getTables(null, "public", "%", null), "TABLE_NAME")));
            step(out, "columns", () -> {
                List<String> l = new ArrayList<>();
                try (ResultSet r = md.getColumns(null, "public", "styles", "%")) {
                    while (r.next()) l.add(quote(r.getString("COLUMN_NAME") + ":" + r.getString("TYPE_NAME")));
                }
                return list(l);
            });
            step(out, "primary_keys", () -> list(column(md.getPrimaryKeys(null, "public", "styles"), "COLUMN_NAME")));
            step(out, "index_info", () -> list(column(md.getIndexInfo(null, "public", "styles", false, true), "INDEX_NAME")));
            step(out, "type_info", () -> list(column(md.getTypeInfo(), "TYPE_NAME")));
            // One prepared statement reused: past pgjdbc's prepareThreshold (5) it is
            // prepared on the server and its results asked for in binary.
            step(out, "prepared", () -> {
                List<String> l = new ArrayList<>();
                try (PreparedStatement ps = c.prepareStatement(
                        "SELECT count(*) AS n FROM styles WHERE list_price > ? AND category = ?")) {
                    for (int i = 0; i < 8; i++) {
                        ps.setDouble(1, i % 2 == 0 ? 20.0 : 40.0);
                        ps.setString(2, "dresses");
                        try (ResultSet r = ps.executeQuery()) {
                            r.next();
                            l.add(quote(String.valueOf(r.getLong("n"))));
                        }
                    }
                }
                return list(l);
            });
            step(out, "typed", () -> {
                List<String> rows = new ArrayList<>();
                try (PreparedStatement ps = c.prepareStatement(
                        "SELECT style_id, list_price, launch_at, lead_time_days FROM styles ORDER BY style_id LIMIT 3")) {
                    for (int round = 0; round < 6; round++) {
                        rows.clear();
                        try (ResultSet r = ps.executeQuery()) {
                            while (r.next()) {
                                rows.add(list(List.of(quote(r.getString(1)), quote(String.valueOf(r.getDouble(2))),
                                        quote(String.valueOf(r.getTimestamp(3).toInstant().getEpochSecond())),
                                        quote(String.valueOf(r.getInt(4))))));
                            }
                        }
                    }
                }
                return list(rows);
            });
            // A fetch size inside a transaction: pgjdbc reads through a portal, 40 rows
            // per round trip.
            step(out, "fetch_size", () -> {
                c.setAutoCommit(false);
                try (Statement st = c.createStatement()) {
                    st.setFetchSize(40);
                    long n = 0;
                    String last = null;
                    try (ResultSet r = st.executeQuery("SELECT style_id FROM styles ORDER BY style_id")) {
                        while (r.next()) {
                            n++;
                            last = r.getString(1);
                        }
                    }
                    c.commit();
                    return list(List.of(quote(String.valueOf(n)), quote(last)));
                } finally {
                    c.setAutoCommit(true);
                }
            });
            step(out, "refused", () -> {
                try (PreparedStatement ps = c.prepareStatement(
                        "INSERT INTO styles SELECT * FROM styles WHERE list_price > ?")) {
                    ps.setDouble(1, 1.0);
                    ps.executeUpdate();
                    return quote("ran");
                } catch (SQLException e) {
                    return quote(e.getSQLState() + " " + e.getMessage());
                }
            });
        }
        System.out.println(out.append("}"));
    }
}
