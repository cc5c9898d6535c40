#!/usr/bin/python3
"""A Python service written with the decorator (tests/python/test_client.py)."""
import zgrid.service as svc


@svc.service
def square(payload: bytes) -> str:
    n = int(payload)
    if n == 13:
        raise RuntimeError("unlucky number")
    return str(n * n)


@svc.service(name="neg")
def negate(payload: bytes) -> bytes:
    return str(-int(payload)).encode()


if __name__ == "__main__":
    svc.serve()
