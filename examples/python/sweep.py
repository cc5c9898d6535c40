#!/usr/bin/env python3
"""A parameter sweep on the grid, durably: submit, exit, fetch later.

    ./sweep.py submit 100000          # prints the session id, then exits
    ./sweep.py fetch SESSION_ID       # any time later, from any machine

The sample service factorizes numbers; a real sweep names its own service
(docs/services.md) and sends its parameters (a dict goes as msgpack).
"""

import random
import sys

import zgrid


def submit(n: int) -> None:
    with zgrid.connect() as grid:
        s = grid.session("factorize", durable=True)
        rng = random.Random(42)
        s.send_many(str(rng.randrange(2, 2**31)) for _ in range(n))
        s.commit()  # returns once every request is in the head's journal
        print(s.id)


def fetch(session_id: str) -> None:
    with zgrid.connect() as grid:
        s = grid.attach(session_id)
        faults = 0
        for r in s.results(decode="text"):
            if r.fault:
                faults += 1
                print(f"{r.index}\tFAULT {r.fault.code}: {r.fault.message}")
            else:
                print(f"{r.index}\t{r.value}")
        st = s.status()
        print(f"# done {st.done} faulted {st.faulted} complete {st.complete}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "submit":
        submit(int(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "fetch":
        fetch(sys.argv[2])
    else:
        sys.exit("usage: sweep.py submit N | fetch SESSION_ID")
