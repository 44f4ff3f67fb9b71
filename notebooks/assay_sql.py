"""Run SQL against a running `assay serve` from a notebook.

The server's address and an analyst token come from the environment:

    ASSAY_URL    default http://127.0.0.1:8080
    ASSAY_TOKEN  a token of role analyst or admin (`assay token create --role analyst --name me`)

Answers travel as Arrow IPC (`POST /v1/sql` with `Accept: application/vnd.apache.arrow.stream`),
so types survive the trip: timestamps stay timestamps, integers stay integers.
"""

import json
import os
import urllib.error
import urllib.request

import pyarrow as pa
import pyarrow.ipc

URL = os.environ.get("ASSAY_URL", "http://127.0.0.1:8080").rstrip("/")


def _token():
    token = os.environ.get("ASSAY_TOKEN")
    if not token:
        raise RuntimeError(
            "set ASSAY_TOKEN to an analyst token: assay token create --role analyst --name me"
        )
    return token


def arrow(sql: str) -> pa.Table:
    """The answer to one read-only query, as an Arrow table."""
    request = urllib.request.Request(
        f"{URL}/v1/sql",
        data=json.dumps({"sql": sql}).encode(),
        headers={
            "Authorization": f"Bearer {_token()}",
            "Content-Type": "application/json",
            "Accept": "application/vnd.apache.arrow.stream",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request) as response:
            table = pa.ipc.open_stream(response.read()).read_all()
            limit = int(response.headers.get("x-assay-row-limit", "0"))
            if limit and table.num_rows >= limit:
                print(f"note: the answer may be cut at the server's row limit of {limit} rows")
            return table
    except urllib.error.HTTPError as e:
        detail = e.read().decode(errors="replace")
        try:
            detail = json.loads(detail).get("detail", detail)
        except ValueError:
            pass
        raise RuntimeError(f"assay refused the query ({e.code}): {detail}") from None


def query(sql: str):
    """The answer to one read-only query, as a pandas DataFrame."""
    return arrow(sql).to_pandas()
