#!/usr/bin/env python3
"""A loopback stand-in for PyChunkedGraph's segmentation API, as cloud-volume and this library use
it (routes from PyChunkedGraph's app/segmentation/{generic,v1}/routes.py and common.py; see
../shared/docs/services.md §4). No Bigtable: the graph is a fixed table of ancestors.

    python tests/servers/chunkedgraph.py --fixture DIR [--port 0] [--token TOKEN] [--log FILE]

Prints `PORT <n>` once listening; serves until killed. DIR/graph.json (tests/reference/
graphene_check.py writes it) holds the tables (each an info whose `data_dir` is relative to DIR),
`n_layers`, `n_bits_for_layer_id`, `edit_timestamp`, and the names of two .npy files of uint64 rows
`[supervoxel, layer-2 parent, ..., root]`: the graph before and after an edit at edit_timestamp.

Routes:
  GET  /<m>/table/<t>/info                          the info (data_dir made an absolute file:// URL)
  POST /<m>/api/v1/table/<t>/roots_binary[?timestamp=&stop_layer=]
                                                    uint64 ids in, uint64 ancestors out
  POST /<m>/api/v1/table/<t>/roots                  {"node_ids": [...]} -> {"root_ids": [...]}
  GET  /<m>/api/v1/table/<t>/node/<id>/leaves?bounds=x0-x1_y0-y1_z0-z1 -> {"leaf_ids": [...]}
  GET  /<m>/1.0/<t>/graph/<id>/root[?timestamp=]    legacy API: one uint64
Request bodies with `Content-Encoding: gzip` are inflated; answers of 1 KiB and more are gzipped
when the request's Accept-Encoding names gzip with a non-zero q. With --token every route wants
`Authorization: Bearer TOKEN`: none is 401, another is 403 (as middle_auth_client answers).

Test controls (never authenticated, never logged):
  POST /__control {"fail": N, "status": S}   the next N requests answer S (default 503)
                  {"garbage": N}             the next N roots answers are 7 bytes
                  {"clear_log": true}        forget the recorded requests
  GET  /__requests                           the requests recorded: method, path, query, auth
                                             ("ok"/"missing"/"wrong", never the token),
                                             content_encoding, accept_encoding, n_ids, status
"""

import argparse
import gzip
import json
import os
import re
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import numpy as np


class Graph:
    def __init__(self, fixture):
        self.dir = os.path.abspath(fixture)
        with open(os.path.join(self.dir, "graph.json")) as f:
            g = json.load(f)
        self.tables = g["tables"]
        self.n_layers = int(g["n_layers"])
        self.shift = 64 - int(g.get("n_bits_for_layer_id", 8))
        self.edit_timestamp = float(g["edit_timestamp"])
        self.versions = {}
        for name in ("before", "after"):
            rows = np.load(os.path.join(self.dir, g[name]))
            anc = {}
            for row in rows.tolist():
                for j, node in enumerate(row):
                    anc.setdefault(node, row[j:])
            self.versions[name] = (rows, anc)
        self.sv_bounds = np.load(os.path.join(self.dir, g["sv_bounds"])) if g.get("sv_bounds") else None

    def info(self, table):
        t = self.tables.get(table)
        if t is None:
            return None
        info = dict(t["info"])
        info["data_dir"] = "file://" + os.path.join(self.dir, t["data_dir"])
        return info

    def version(self, timestamp):
        if timestamp is not None and float(timestamp) < self.edit_timestamp:
            return self.versions["before"]
        return self.versions["after"]

    def ancestor(self, node, stop_layer, anc):
        node = int(node)
        if node == 0:
            return 0
        layer = node >> self.shift
        stop = self.n_layers if stop_layer is None else int(stop_layer)
        if layer >= stop:
            return node
        chain = anc.get(node)
        if chain is None:
            return node
        return chain[stop - layer]

    def leaves(self, node, bounds, timestamp):
        rows, _ = self.version(timestamp)
        layer = int(node) >> self.shift
        col = layer - 1
        if col < 0 or col >= rows.shape[1]:
            return []
        hit = rows[:, col] == np.uint64(node)
        if bounds is not None and self.sv_bounds is not None:
            b = self.sv_bounds
            for d in range(3):
                lo, hi = bounds[d]
                hit &= (b[:, d] < hi) & (b[:, 3 + d] > lo)
        return [int(v) for v in rows[hit, 0]]


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.fail = 0
        self.fail_status = 503
        self.garbage = 0
        self.log = []


def make_handler(graph, token, state, logfile):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def body(self):
            n = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(n) if n else b""
            if (self.headers.get("Content-Encoding") or "").lower() == "gzip":
                data = gzip.decompress(data)
            return data

        def answer(self, status, data, ctype="application/json"):
            if isinstance(data, (dict, list)):
                data = json.dumps(data).encode()
            accept = self.headers.get("Accept-Encoding") or ""
            gz = False
            for part in accept.split(","):
                bits = part.strip().split(";")
                if bits[0].strip().lower() == "gzip":
                    q = 1.0
                    for p in bits[1:]:
                        if p.strip().startswith("q="):
                            q = float(p.strip()[2:])
                    gz = q > 0
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            if gz and len(data) >= 1024:
                data = gzip.compress(data, 1)
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return status

        def control(self, method, url):
            if url.path == "/__requests" and method == "GET":
                with state.lock:
                    self.answer(200, list(state.log))
                return True
            if url.path == "/__control" and method == "POST":
                cmd = json.loads(self.body() or b"{}")
                with state.lock:
                    if "fail" in cmd:
                        state.fail = int(cmd["fail"])
                        state.fail_status = int(cmd.get("status", 503))
                    if "garbage" in cmd:
                        state.garbage = int(cmd["garbage"])
                    if cmd.get("clear_log") or cmd.get("reset"):
                        state.log.clear()
                    if cmd.get("reset"):
                        state.fail = state.garbage = 0
                self.answer(200, {"ok": True})
                return True
            return False

        def handle_any(self, method):
            url = urlsplit(self.path)
            if self.control(method, url):
                return
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            got = self.headers.get("Authorization")
            auth = "missing" if not got else ("ok" if token is None or got == f"Bearer {token}" else "wrong")
            rec = {"method": method, "path": url.path, "query": query, "auth": auth,
                   "content_encoding": self.headers.get("Content-Encoding"),
                   "accept_encoding": self.headers.get("Accept-Encoding")}
            try:
                rec["status"] = self.route(method, url.path, query, auth, rec)
            except Exception as e:  # a bug in the double: say so loudly
                rec["status"] = self.answer(500, {"error": f"double: {type(e).__name__}: {e}"})
            with state.lock:
                state.log.append(rec)
            if logfile:
                with open(logfile, "a") as f:
                    f.write(json.dumps(rec) + "\n")

        def route(self, method, path, query, auth, rec):
            body = self.body() if method == "POST" else b""
            if token is not None and auth != "ok":
                status = 401 if auth == "missing" else 403
                return self.answer(status, {"error": "unauthorized" if status == 401 else "forbidden"})
            with state.lock:
                if state.fail > 0:
                    state.fail -= 1
                    return self.answer(state.fail_status, {"error": "scripted failure"})
            ts = query.get("timestamp")
            m = re.fullmatch(r"/(\w+)/table/([\w.\-]+)/info", path)
            if m and method == "GET":
                info = graph.info(m.group(2))
                if info is None:
                    return self.answer(404, {"error": f"table {m.group(2)} not found"})
                return self.answer(200, info)
            m = re.fullmatch(r"/(\w+)/api/v1/table/([\w.\-]+)/(roots_binary|roots)", path)
            if m and method == "POST":
                if graph.info(m.group(2)) is None:
                    return self.answer(404, {"error": "table not found"})
                if m.group(3) == "roots_binary":
                    if len(body) % 8:
                        return self.answer(400, {"error": "body is not uint64 ids"})
                    ids = np.frombuffer(body, dtype="<u8")
                else:
                    ids = np.array(json.loads(body)["node_ids"], dtype=np.uint64)
                rec["n_ids"] = int(ids.size)
                _, anc = graph.version(ts)
                stop = query.get("stop_layer")
                roots = np.array([graph.ancestor(i, stop, anc) for i in ids.tolist()], dtype="<u8")
                with state.lock:
                    garbage = state.garbage > 0
                    state.garbage -= int(garbage)
                if garbage:
                    return self.answer(200, b"\x01" * 7, "application/octet-stream")
                if m.group(3) == "roots":
                    return self.answer(200, {"root_ids": [int(r) for r in roots]})
                return self.answer(200, roots.tobytes(), "application/octet-stream")
            m = re.fullmatch(r"/(\w+)/api/v1/table/([\w.\-]+)/node/(\d+)/leaves", path)
            if m and method == "GET":
                bounds = None
                if "bounds" in query:
                    bounds = [tuple(int(v) for v in p.split("-")) for p in query["bounds"].split("_")]
                return self.answer(200, {"leaf_ids": [str(v) for v in graph.leaves(int(m.group(3)), bounds, ts)]})
            m = re.fullmatch(r"/(\w+)/1\.0/([\w.\-]+)/graph/(\d+)/root", path)
            if m and method in ("GET", "POST"):
                _, anc = graph.version(ts)
                root = graph.ancestor(int(m.group(3)), None, anc)
                return self.answer(200, np.array([root], dtype="<u8").tobytes(), "application/octet-stream")
            return self.answer(404, {"error": f"no route {method} {path}"})

        def do_GET(self):
            self.handle_any("GET")

        def do_POST(self):
            self.handle_any("POST")

    return Handler


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--token")
    ap.add_argument("--log")
    a = ap.parse_args()
    graph = Graph(a.fixture)
    server = ThreadingHTTPServer(("127.0.0.1", a.port), make_handler(graph, a.token, State(), a.log))
    server.daemon_threads = True
    parent = os.getppid()

    def orphaned():  # a double whose test process died goes too
        while True:
            if os.getppid() != parent:
                os._exit(0)
            threading.Event().wait(0.5)

    threading.Thread(target=orphaned, daemon=True).start()
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
