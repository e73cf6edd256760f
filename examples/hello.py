"""The smallest farm workflow: one python app and one bash app.

    python examples/hello.py

farm.load() with no argument starts a pool of workers on this machine.  The driver and
the pool share nothing but the spool directory hello.farm, created beside this script.
Run the script a second time and it finds its tasks already done there.
"""

import shlex
import sys

import farm
from farm import AUTO_LOGNAME, bash_app, python_app


@python_app
def greet(name):
    import os
    import socket
    return f"hello, {name}, from process {os.getpid()} on {socket.gethostname()}"


@bash_app
def shout(word, stdout=AUTO_LOGNAME, stderr=AUTO_LOGNAME):
    # A bash app returns the command line; a worker runs it with bash.
    return f"echo {shlex.quote(word)} | tr a-z A-Z"


def main():
    with farm.load():
        greeting = greet("farm")
        shouted = shout("hello from bash")

        text = greeting.result()
        print(f"python app returned: {text!r}")

        exit_code = shouted.result()  # a bash app's future resolves to its exit code
        with open(shouted.stdout) as f:
            out = f.read()
        print(f"bash app exited with {exit_code}; its stdout ({shouted.stdout}):")
        print(out, end="")

    if not text.startswith("hello, farm, from process"):
        sys.exit(f"hello: unexpected python result {text!r}")
    if exit_code != 0 or out != "HELLO FROM BASH\n":
        sys.exit(f"hello: unexpected bash result: exit {exit_code}, stdout {out!r}")
    print("hello: OK")


if __name__ == "__main__":
    main()
