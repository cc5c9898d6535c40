#!/usr/bin/env python3
# Splits a perf profile of one process (all its threads) by where its CPU
# went: the syscalls ZeroMQ makes (TCP send/receive, epoll/poll with the
# sleeping and waking in them, the eventfd mailbox between a program's thread
# and ZeroMQ's I/O thread, getpid), page faults, libzmq's own code, malloc,
# memcpy, zgrid's msgpack encoding and decoding, and the program's logic.
# What BM_HeadDispatchVsFloor's floor (bench/bare_head.hpp) is made of, and
# the head beside it:
#
#   ZGRID_BENCH_MARKS=1 perf record -k CLOCK_MONOTONIC -F 2999 -g -a -o floor.data -- \
#       build/bench/scale_bench --benchmark_filter='HeadDispatchVsFloor/nodes:10/per_msg:64'
#   # stderr: "scale_bench: bare head PID P streamed from T0 to T1"
#   perf script -i floor.data --time T0,T1 -F comm,pid,tid,ip,sym,dso | bench/perf_split.py P
import collections
import sys

TCP_SEND = 'syscalls: TCP send (sendto, with loopback delivery to the peer)'
TCP_RECV = 'syscalls: TCP receive (recvfrom)'
POLL = 'syscalls: epoll_wait/epoll_ctl/poll, with sleeping and waking'
EVFD = 'syscalls: eventfd write/read (the mailbox to and from ZeroMQ\'s I/O thread)'
GETPID = 'syscalls: getpid (libzmq\'s fork check)'
FAULT = 'kernel: page faults'
MMAP = 'syscalls: mmap/munmap/brk/madvise (malloc)'
# The first of these met in a kernel (or libc syscall stub) sample's call
# chain names what it was doing.
KEYS = (('exc_page_fault', FAULT), ('tcp_v4_rcv', TCP_SEND), ('net_rx_action', TCP_SEND),
        ('sys_sendto', TCP_SEND), ('__send', TCP_SEND), ('sys_recvfrom', TCP_RECV),
        ('__libc_recv', TCP_RECV), ('epoll_wait', POLL), ('epoll_ctl', POLL),
        ('do_sys_poll', POLL), ('__poll', POLL), ('eventfd', EVFD), ('ksys_write', EVFD),
        ('ksys_read', EVFD), ('__GI___libc_write', EVFD), ('getpid', GETPID), ('munmap', MMAP),
        ('mmap', MMAP), ('brk', MMAP), ('madvise', MMAP))
CODEC = ('proto::', 'Writer', 'Reader', 'decode', 'check_bytes', 'skip_values', 'encode',
         'write_response')


def classify(frames):
    leaf_sym, leaf_dso = frames[0]
    kernel = 'kernel' in leaf_dso
    stub = 'libc' in leaf_dso and not any(
        k in leaf_sym for k in ('mem', 'malloc', 'free', 'alloc', 'unlink_chunk'))
    if stub and leaf_sym in ('read', '__libc_read'):
        return EVFD
    if kernel or stub:
        for key, name in KEYS:
            if any(key in sym for sym, _ in frames):
                return name
        return 'kernel: other' if kernel else 'libc: other'
    if 'libzmq' in leaf_dso:
        return 'libzmq (its own code)'
    if 'libc' in leaf_dso:
        if leaf_sym.startswith(('__mem', 'mem')):
            return 'libc: memcpy/memmove/memset'
        return 'libc: malloc/free'
    if 'libstdc++' in leaf_dso:
        return 'libstdc++'
    if leaf_dso.endswith(('scale_bench', 'zgrid-head')):
        if any(k in leaf_sym for k in CODEC):
            return 'zgrid msgpack encoding/decoding (common/protocol, common/codec)'
        return 'the program\'s logic'
    return 'other: ' + leaf_dso.rsplit('/', 1)[-1]


def main():
    if len(sys.argv) != 2:
        sys.exit('usage: perf script -F comm,pid,tid,ip,sym,dso | perf_split.py PID')
    pid = sys.argv[1]
    cats, threads = collections.Counter(), collections.Counter()
    head, frames = None, []

    def take():
        if head and head[1] == pid and frames:
            threads['ZeroMQ I/O thread' if head[0].startswith('ZMQbg') else 'its own thread'] += 1
            cats[classify(frames)] += 1

    for line in sys.stdin:
        if not line.strip():
            take()
            head, frames = None, []
        elif not line[0].isspace():
            take()
            parts = line.split()
            ids = [p for p in parts if '/' in p and p.replace('/', '').isdigit()]
            head, frames = (parts[0], ids[0].split('/')[0] if ids else ''), []
        else:
            rest = line.strip().split(None, 1)
            if len(rest) == 2:
                sym, _, dso = rest[1].rpartition(' (')
                frames.append((sym, dso.rstrip(')')) if sym else (rest[1], '?'))
    take()
    total = sum(threads.values())
    if total == 0:
        sys.exit('no samples of PID ' + pid)
    print(f'{total} samples of PID {pid}')
    for name, n in threads.most_common() + cats.most_common():
        print(f'  {100 * n / total:5.1f}%  {name}')


if __name__ == '__main__':
    main()
