#!/usr/bin/env python3
"""Signs in seeded users and writes "<user id> <access token>" lines for the load scripts.

    signin.py --url http://127.0.0.1:8080 --first-email seed-ab12cd-0@example.test \
              --count 512 --out users.txt [--warm] [--baseline http://127.0.0.1:8090]

Seeded accounts are `seed-<tag>-<i>@example.test` with the password `seeded-password`
(`outgrow seed`). With --warm each user's own record is read once (the cache is then warm);
with --baseline that record is also stored in the baseline's cache (PUT /cache/{id}), so both
servers answer the same bytes. Prints progress on stderr.
"""

import argparse
import concurrent.futures
import http.client
import json
import sys
import threading
import urllib.parse

PASSWORD = "seeded-password"
local = threading.local()


def connection(base):
    """One keep-alive connection per thread and server."""
    key = "conn_" + base
    conn = getattr(local, key, None)
    if conn is None:
        parsed = urllib.parse.urlsplit(base)
        conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        setattr(local, key, conn)
    return conn


def call(base, method, path, body=None, headers=None):
    headers = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers.setdefault("content-type", "application/json")
    for attempt in range(3):
        conn = connection(base)
        try:
            conn.request(method, path, body=data, headers=headers)
            response = conn.getresponse()
            payload = response.read()
            return response.status, payload
        except (http.client.HTTPException, OSError):
            conn.close()
            setattr(local, "conn_" + base, None)
            if attempt == 2:
                raise
    raise RuntimeError("unreachable")


def sign_in(args, index):
    email = args.first_email.replace("-0@", f"-{index}@", 1)
    status, body = call(args.url, "POST", "/api/v1/auth/login", {"email": email, "password": PASSWORD})
    if status != 200:
        raise SystemExit(f"login of {email} answered {status}: {body[:200]!r}")
    login = json.loads(body)
    user_id, token = login["user"]["id"], login["access_token"]
    if args.warm or args.baseline:
        status, record = call(args.url, "GET", f"/api/v1/users/{user_id}", headers={"authorization": f"Bearer {token}"})
        if status != 200:
            raise SystemExit(f"reading user {user_id} answered {status}")
        if args.baseline:
            status, _ = call(args.baseline, "PUT", f"/cache/{user_id}", record)
            if status != 204:
                raise SystemExit(f"the baseline refused the cache entry of {user_id}: {status}")
    return user_id, token


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--first-email", required=True)
    parser.add_argument("--count", type=int, default=512)
    parser.add_argument("--out", required=True)
    parser.add_argument("--warm", action="store_true")
    parser.add_argument("--baseline")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    users = []
    with concurrent.futures.ThreadPoolExecutor(args.threads) as pool:
        for done, user in enumerate(pool.map(lambda i: sign_in(args, i), range(args.count)), 1):
            users.append(user)
            if done % 64 == 0 or done == args.count:
                print(f"\r  signed in {done}/{args.count} users", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    with open(args.out, "w") as out:
        for user_id, token in users:
            out.write(f"{user_id} {token}\n")


if __name__ == "__main__":
    main()
