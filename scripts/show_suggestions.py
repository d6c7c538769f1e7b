"""Pretty-print one suggestions response (JSON on stdin) for the demo."""

import json
import sys

text = sys.stdin.read()
if not text.strip():   # curl -f prints nothing on an HTTP error
    sys.exit("  (no response: the request failed; see the API's log, api.log in the data directory)")
body = json.loads(text)
print(f"GET /v1/users/{body['user_id']}/suggestions  (bucket {body['bucket']}, snapshot {body['snapshot_version']})")
for s in body["suggestions"]:
    print(f"  {s['position'] + 1}. user {s['user_id']:>6}  [{', '.join(s['sources'])}]  {'; '.join(s['reasons'])}")
for name, why in body.get("skipped_sources", {}).items():
    print(f"  ({name} skipped: {why})")
if not body["suggestions"]:
    print("  (no suggestions)")
