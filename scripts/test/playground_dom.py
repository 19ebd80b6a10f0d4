#!/usr/bin/env python3
"""Loads a page in headless Chromium, waits until an element reaches a state, then saves the
page's DOM and a screenshot. Drives the browser over the DevTools protocol on a pipe
(--remote-debugging-pipe), so it needs nothing beyond Python and Debian's chromium.

    python3 scripts/test/playground_dom.py URL OUT.html OUT.png [--wait-id status --wait-state done --timeout 120]

Exits 0 once the element `#ID` has data-state STATE; 1 (DOM and screenshot still saved) if it
does not within the timeout.
"""
import argparse
import base64
import json
import os
import subprocess
import tempfile
import time


class Browser:
    def __init__(self, chromium, size):
        self.profile = tempfile.mkdtemp(prefix="repengd-chromium-")
        to_child_r, self.to_child = os.pipe()
        self.from_child, from_child_w = os.pipe()

        def wire():
            # The DevTools pipe: the browser reads commands on fd 3 and writes replies on fd 4.
            # (Through fresh copies: a pipe may already sit on fd 3 or 4, and is close-on-exec.)
            r, w = os.dup(to_child_r), os.dup(from_child_w)
            os.dup2(r, 3)
            os.dup2(w, 4)

        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
             "--remote-debugging-pipe", "--user-data-dir=" + self.profile, "--window-size=" + size, "about:blank"],
            preexec_fn=wire, close_fds=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self.buffer = b""
        self.next_id = 0

    def call(self, method, params=None, session=None):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.to_child, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.from_child, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def close(self):
        try:
            self.call("Browser.close")
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        subprocess.run(["rm", "-rf", self.profile])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("dom")
    ap.add_argument("screenshot")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--wait-id", default="status")
    ap.add_argument("--wait-state", default="done")
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--size", default="1400,1000")
    a = ap.parse_args()

    browser = Browser(a.chromium, a.size)
    try:
        page = next(t for t in browser.call("Target.getTargets")["targetInfos"] if t["type"] == "page")
        session = browser.call("Target.attachToTarget", {"targetId": page["targetId"], "flatten": True})["sessionId"]
        browser.call("Page.enable", session=session)
        browser.call("Page.navigate", {"url": a.url}, session=session)
        probe = f"(document.getElementById({json.dumps(a.wait_id)}) || {{dataset: {{}}}}).dataset.state || ''"
        deadline = time.monotonic() + a.timeout
        state = ""
        while time.monotonic() < deadline:
            state = browser.call("Runtime.evaluate", {"expression": probe, "returnByValue": True},
                                 session=session)["result"].get("value", "")
            if state == a.wait_state:
                break
            time.sleep(0.2)
        dom = browser.call("Runtime.evaluate", {"expression": "document.documentElement.outerHTML", "returnByValue": True},
                           session=session)["result"]["value"]
        with open(a.dom, "w") as f:
            f.write(dom)
        shot = browser.call("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
        with open(a.screenshot, "wb") as f:
            f.write(base64.b64decode(shot))
        print(json.dumps({"state": state}))
        raise SystemExit(0 if state == a.wait_state else 1)
    finally:
        browser.close()


if __name__ == "__main__":
    main()
