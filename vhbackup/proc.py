"""The one place where vhbackup starts and stops child processes.

Every child gets an argv list (never a shell string) and an explicit
environment; secrets travel in that environment or in files, never in argv.
A program that is not installed becomes a one-line error naming the Debian
package to install.

Each child is started through ``setpriv --pdeathsig`` so that it is
signalled when the vhbackup thread that started it dies, even by SIGKILL:
nothing vhbackup starts goes on unsupervised, and a restic that reads a dump
from vhbackup is killed before it could save what it got so far. Children
are stopped with their own signal (restic: SIGINT, which makes it remove
its lock; others: SIGTERM) and SIGKILL only after ``STOP_GRACE`` seconds.

``pump`` is the pipeline runner (producer | vhbackup | consumer): vhbackup
copies the producer's output into the consumer and decides, once the
producer has ended, whether the consumer may see end-of-file (``commit``)
or is stopped without it. restic reading a dump on stdin saves a snapshot
only on end-of-file, so a dump that failed, came out empty or looks
truncated never becomes a snapshot, on every restic version.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import stat
import struct
import subprocess
import termios
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Callable, Iterable, Iterator, Mapping, Sequence, Union

from vhbackup.errors import VhError

log = logging.getLogger("vhbackup")

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL

#: Seconds a child gets to end after its stop signal before it is killed.
STOP_GRACE = 15.0
#: Bytes moved per read in ``pump``; pipes are enlarged to this size where allowed.
CHUNK = 1 << 20
#: Bytes of the start and the end of a pumped stream kept for the commit decision.
KEEP = 4096
_F_SETPIPE_SZ = 1031

#: Variables a child must never inherit from vhbackup's own environment: they
#: would silently override the policy (which repository, which password).
_SCRUBBED = (
    "RESTIC_REPOSITORY", "RESTIC_REPOSITORY_FILE", "RESTIC_PASSWORD", "RESTIC_PASSWORD_FILE",
    "RESTIC_PASSWORD_COMMAND", "RESTIC_CACHE_DIR", "RESTIC_COMPRESSION", "RESTIC_KEY_HINT",
    "RESTIC_HOST", "RESTIC_PACK_SIZE", "RESTIC_READ_CONCURRENCY",
    "PGPASSWORD", "PGPASSFILE", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGSERVICEFILE",
    "MYSQL_PWD", "MYSQL_HOST", "MYSQL_TCP_PORT", "MYSQL_UNIX_PORT",
)


class TimedOut(VhError):
    """A child did not end within its time limit and was stopped."""


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@dataclass(frozen=True)
class Step:
    """One program of a pipeline: argv (never a secret in it), extra environment, how to stop it."""

    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    stop_signal: int = signal.SIGTERM
    missing_hint: str | None = None
    #: Signal the child gets if the vhbackup thread that started it dies.
    death_signal: int | None = None
    #: Called before the child is stopped early (an exec client whose signal would not reach the tool
    #: it runs inside a container: this stops that tool, and the client then ends by itself).
    on_stop: Callable[[], None] | None = field(default=None, compare=False)
    #: Polled about once a second with the child's pid while it runs; True stops it (see ``stream``).
    poll: Callable[[int], bool] | None = field(default=None, compare=False)

    @property
    def tool(self) -> str:
        return os.path.basename(self.argv[0])


@dataclass(frozen=True)
class Ended:
    """How a pipeline's program ended: exit status and its last stderr lines."""

    tool: str
    returncode: int
    stderr: tuple[str, ...]
    #: vhbackup stopped it because it wrote nothing for ``idle_timeout`` seconds.
    stalled: bool = False

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.stalled

    @property
    def how(self) -> str:
        return describe_exit(self.returncode)


@dataclass
class Stream:
    """What passed through a pipeline: its length and its first and last bytes."""

    bytes: int = 0
    head: bytes = b""
    tail: bytes = b""

    def add(self, chunk: bytes | memoryview) -> None:
        """Count ``chunk`` and keep its part of the first and last ``KEEP`` bytes (copying no more than that)."""
        if len(self.head) < KEEP:
            self.head += bytes(chunk[:KEEP - len(self.head)])
        self.tail = (self.tail + bytes(chunk[-KEEP:]))[-KEEP:]
        self.bytes += len(chunk)


@dataclass(frozen=True)
class Pumped:
    """The outcome of ``pump``: every program's status, the stream, and whether the consumer got EOF."""

    producer: Ended
    consumer: Ended | None
    stream: Stream
    #: Why the consumer was stopped instead of seeing end-of-file; None when it was let finish.
    aborted: str | None
    #: The consumer stopped reading (it failed) before the producer had finished.
    consumer_first: bool


# --- environment and start ------------------------------------------------------------


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED}
    env.setdefault("LC_ALL", "C.UTF-8")
    if extra:
        env.update(extra)
    return env


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit {returncode}"


def _missing(name: str, hint: str | None) -> VhError:
    fix = f"; install it: {hint}" if hint else ""
    return VhError(f"{name}: command not found{fix}")


_setpriv: list[str | None] = []


def _death_prefix(signum: int) -> list[str]:
    """``setpriv --pdeathsig SIG --`` (util-linux, essential on Debian), or nothing where it is missing."""
    if not _setpriv:
        _setpriv.append(shutil.which("setpriv", path="/usr/bin:/bin"))
    if _setpriv[0] is None:
        return []
    return [_setpriv[0], "--pdeathsig", signal.Signals(signum).name[3:], "--"]


def _executable(name: str, env: Mapping[str, str], hint: str | None) -> str:
    if "/" in name:
        if not os.path.exists(name):
            raise _missing(name, hint)
        if not os.access(name, os.X_OK) or os.path.isdir(name):
            raise VhError(f"{name}: not executable (permission denied)")
        return name
    found = shutil.which(name, path=env.get("PATH", os.defpath))
    if found is None:
        raise _missing(name, hint)
    return found


_live: dict[int, tuple[subprocess.Popen, int]] = {}
#: Children with an ``on_stop`` hook, kept until their pump ends (also when the child itself is gone:
#: the tool it started inside a container may still run).
_on_stop: dict[int, tuple[subprocess.Popen, Callable[[], None]]] = {}
_live_lock = threading.Lock()
_cancelled = threading.Event()


def spawn(argv: Sequence[str], *, env: Mapping[str, str] | None = None, missing_hint: str | None = None,
          stdin: int | IO | None = None, stdout: int | IO | None = None, stderr: int | IO | None = PIPE,
          pass_fds: Iterable[int] = (), text: bool = False, stop_signal: int = signal.SIGTERM,
          death_signal: int | None = None, on_stop: Callable[[], None] | None = None) -> subprocess.Popen:
    """Start ``argv`` and return the Popen; the caller waits for it (``stop`` ends it early)."""
    argv = [str(a) for a in argv]
    full_env = child_env(env)
    exe = _executable(argv[0], full_env, missing_hint)
    full = [*_death_prefix(death_signal or stop_signal), exe, *argv[1:]]
    log.debug("running %s", " ".join(argv))
    try:
        process = subprocess.Popen(full, env=full_env, stdin=stdin, stdout=stdout, stderr=stderr,
                                   pass_fds=tuple(pass_fds), text=text, close_fds=True)
    except FileNotFoundError:
        raise _missing(argv[0], missing_hint) from None
    except PermissionError:
        raise VhError(f"{argv[0]}: not executable (permission denied)") from None
    with _live_lock:
        for pid in [p for p, (proc, _) in _live.items() if proc.returncode is not None]:
            del _live[pid]
        _live[process.pid] = (process, stop_signal)
        if on_stop is not None:
            _on_stop[process.pid] = (process, on_stop)
    return process


def _stop_hook(process: subprocess.Popen, grace: float) -> bool:
    """Run the child's ``on_stop`` hook, if it has one; True when the child then ended within ``grace``."""
    with _live_lock:
        _, hook = _on_stop.pop(process.pid, (None, None))
    if hook is None:
        return False
    try:
        hook()
    except Exception as exc:  # noqa: BLE001 - stopping goes on with the signal
        log.warning("could not stop %s cleanly: %s", process.args[0] if process.args else "a child", exc)
    try:
        process.wait(timeout=grace)
        return True
    except subprocess.TimeoutExpired:
        return False


def stop(process: subprocess.Popen, signum: int = signal.SIGTERM, grace: float = STOP_GRACE) -> None:
    """End a child we are abandoning, if it still runs: ``signum``, then SIGKILL after ``grace`` seconds.

    What it started and left running when it ended (a ``restic_binary`` wrapper that did not exec
    leaves restic, holding our pipes and its lock) gets the same, afterwards.
    """
    if _stop_hook(process, grace) or process.poll() is not None:
        return
    below = [(pid, _started(pid)) for pid in process_tree(process.pid)[1:]]
    try:
        process.send_signal(signum)
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    except ProcessLookupError:
        pass
    _stop_left(below, signum, grace)


def _started(pid: int) -> str | None:
    """When process ``pid`` started (to tell it from a later process with its number); None if gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return None if fields[0] in ("Z", "X") else fields[19]
    except (OSError, IndexError):
        return None


def _stop_left(processes: list[tuple[int, str | None]], signum: int, grace: float) -> None:
    def alive() -> list[int]:
        return [pid for pid, started in processes if started is not None and _started(pid) == started]

    for sig, wait in ((signum, grace), (signal.SIGKILL, 1.0)):
        left = alive()
        for pid in left:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + wait
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = alive()
        if not left:
            return


def stop_all() -> None:
    """Stop every child still running (an interrupt is unwinding the run); pumps refuse to commit after this."""
    _cancelled.set()
    with _live_lock:
        hooked = [p for p, _ in _on_stop.values()]
    for process in hooked:
        _stop_hook(process, STOP_GRACE)
    with _live_lock:
        children = [(p, s) for p, s in _live.values() if p.poll() is None]
    for process, signum in children:
        try:
            process.send_signal(signum)
        except ProcessLookupError:
            pass
    for process, _ in children:
        try:
            process.wait(timeout=STOP_GRACE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def cancelled() -> bool:
    return _cancelled.is_set()


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back inside the block; deliver them (to the old handlers) after it.

    For steps that must not be cut in half by vhbackup's own unwinding:
    starting the units again, creating a database that must then be dropped.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous: dict[int, Callable | int | None] = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, lambda n, _frame: pending.append(n))
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(pending):
            handler = previous[signum]
            if callable(handler):
                handler(signum, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), signum)


# --- whole runs -------------------------------------------------------------------------


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, missing_hint: str | None = None,
        input: str | None = None, timeout: float | None = None, stdout: int | IO | None = PIPE,
        stop_signal: int = signal.SIGTERM) -> Result:
    """Run to completion and return its exit code and (text) output.

    A child that outlives ``timeout`` is stopped with its own signal (restic
    then removes its lock) and ``TimedOut`` is raised.
    """
    process = spawn(argv, env=env, missing_hint=missing_hint, stdin=PIPE if input is not None else DEVNULL,
                    stdout=stdout, stderr=PIPE, text=True, stop_signal=stop_signal)
    try:
        out, err = process.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        stop(process, stop_signal)
        try:
            process.communicate(timeout=5)  # a grandchild may still hold the pipes: do not wait for it
        except subprocess.TimeoutExpired:
            pass
        raise TimedOut(f"{os.path.basename(str(argv[0]))}: no answer within {timeout:.0f} s") from None
    except BaseException:
        stop(process, stop_signal)
        raise
    return Result(tuple(str(a) for a in argv), process.returncode, out or "", err or "")


def stream(argv: Sequence[str], on_line: Callable[[str], None], *, env: Mapping[str, str] | None = None,
           missing_hint: str | None = None, stdin: int | IO | None = DEVNULL,
           on_stderr: Callable[[str], Verdict] | None = None, keep_stderr: int = 200,
           stop_signal: int = signal.SIGTERM, poll: Callable[[int], bool] | None = None) -> Result:
    """Run ``argv``, calling ``on_line`` for each stdout line as it arrives.

    stderr is drained by a thread (so neither pipe can fill and block the
    child); its last ``keep_stderr`` lines are returned in the Result.
    ``on_stderr`` may ask for the child to be stopped (see ``Verdict``), and
    so may ``poll``, called about once a second with the child's pid (a
    child that prints nothing when it hangs: see ``activity``).
    """
    process = spawn(argv, env=env, missing_hint=missing_hint, stdin=stdin, stdout=PIPE, stderr=PIPE, text=True,
                    stop_signal=stop_signal)
    tail: deque[str] = deque(maxlen=keep_stderr)
    drain = _drain_thread(process.stderr, tail, on_stderr, process, stop_signal)
    if poll is not None:
        _poll_thread(process, poll, stop_signal)
    try:
        for line in process.stdout:
            on_line(line.rstrip("\n"))
        process.wait()
    except BaseException:
        stop(process, stop_signal)
        raise
    finally:
        drain.join(timeout=5)
    return Result(tuple(str(a) for a in argv), process.returncode, "", "\n".join(tail))


#: What a stderr watcher returns: True stops the child now, a number of seconds stops it if it is still
#: running then (a child that said it failed but does not end), None or False leaves it alone.
Verdict = Union[bool, float, None]


def _drain_thread(pipe: IO, tail: deque, on_line: Callable[[str], Verdict] | None,
                  process: subprocess.Popen | None = None, stop_signal: int = signal.SIGTERM) -> threading.Thread:
    def work() -> None:
        stopping = False
        for raw in pipe:
            line = (raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw).rstrip("\n")
            tail.append(line)
            verdict = on_line(line) if on_line else None
            if not verdict or stopping or process is None:
                continue
            stopping = True
            delay = 0.0 if verdict is True else float(verdict)
            timer = threading.Timer(delay, stop, args=(process, stop_signal))
            timer.daemon = True
            timer.start()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


# --- pipelines ----------------------------------------------------------------------------


def _poll_thread(process: subprocess.Popen, poll: Callable[[int], bool], stop_signal: int) -> None:
    def work() -> None:
        failed = False
        while process.poll() is None:
            time.sleep(1.0)
            try:
                if process.poll() is None and poll(process.pid):
                    stop(process, stop_signal)
                    return
            except Exception:  # noqa: BLE001 - a broken watch must not end the watching
                if not failed:
                    log.exception("watching %s failed", process.args[0] if process.args else "a child")
                failed = True

    threading.Thread(target=work, daemon=True).start()


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process below it (a ``restic_binary`` wrapper that does not exec runs restic as its child)."""
    tree, todo = [], [pid]
    while todo:
        parent = todo.pop()
        tree.append(parent)
        try:
            for task in os.listdir(f"/proc/{parent}/task"):
                with open(f"/proc/{parent}/task/{task}/children", encoding="ascii") as fh:
                    todo += [int(child) for child in fh.read().split()]
        except (OSError, ValueError):
            continue
    return tree


def activity(pid: int) -> tuple[int, float] | None:
    """What process ``pid`` and its descendants have done so far: bytes read and written through any
    descriptor (files, pipes, sockets: ``rchar`` + ``wchar`` of /proc/PID/io) and CPU seconds; None when
    /proc cannot say (another user's process that is not dumpable, e.g. one with file capabilities).

    A child that is stuck does neither; one that waits for a slow disk or server does one or the other.
    """
    total_io, ticks = 0, 0
    for index, member in enumerate(process_tree(pid)):
        try:
            with open(f"/proc/{member}/io", encoding="ascii") as fh:
                io = dict(line.split(":", 1) for line in fh if ":" in line)
            with open(f"/proc/{member}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()  # the name in (...) may hold spaces
            total_io += int(io["rchar"]) + int(io["wchar"])
            ticks += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
        except PermissionError:
            return None  # one member hidden (a restic with file capabilities under a wrapper): blind
        except (OSError, KeyError, ValueError, IndexError):
            if index == 0:
                return None
    return total_io, ticks / os.sysconf("SC_CLK_TCK")


def socket_queues(pid: int) -> tuple[tuple[str, int, int], ...]:
    """(inode, unsent, unread bytes) of each TCP socket of ``pid`` and its descendants.

    A slow upload leaves the process's counters flat while the kernel sends
    what it was handed (hundreds of KB at a time); the queue shrinking shows
    the peer still takes data. A peer that stopped answering leaves it as is.
    """
    tree = process_tree(pid)
    inodes = set()
    for member in tree:
        try:
            for fd in os.listdir(f"/proc/{member}/fd"):
                link = os.readlink(f"/proc/{member}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
        except OSError:
            continue
    queues = []
    for table in ("tcp", "tcp6") if inodes else ():
        try:
            with open(f"/proc/{pid}/net/{table}", encoding="ascii") as fh:
                next(fh, None)
                for line in fh:
                    fields = line.split()
                    if len(fields) > 9 and fields[9] in inodes:
                        tx, rx = fields[4].split(":")
                        queues.append((fields[9], int(tx, 16), int(rx, 16)))
        except (OSError, ValueError):
            continue
    return tuple(sorted(queues))


def unread_input(pid: int) -> int:
    """Bytes waiting unread in process ``pid``'s stdin pipe; 0 when there are none or /proc cannot say.

    Opens another read end of that pipe through /proc (taking nothing from it) to ask FIONREAD.
    """
    try:
        fd = os.open(f"/proc/{pid}/fd/0", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return 0
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return 0
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    except OSError:
        return 0
    finally:
        os.close(fd)


def _enlarge(fd: int) -> None:
    try:
        fcntl.fcntl(fd, _F_SETPIPE_SZ, CHUNK)
    except OSError:
        pass  # above /proc/sys/fs/pipe-max-size for this user: the default size only costs syscalls


def _write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def pump(producer: Step, consumer: Step | None, *,
         commit: Callable[[Ended, Stream], str | None] = lambda ended, stream: None,
         on_chunk: Callable[[bytes], None] | None = None,
         on_consumer_line: Callable[[str], None] | None = None,
         on_consumer_stderr: Callable[[str], Verdict] | None = None,
         idle_timeout: float | None = None, keep_stderr: int = 200) -> Pumped:
    """Run ``producer | vhbackup | consumer`` and return every status.

    vhbackup copies the producer's stdout into the consumer's stdin (and to
    ``on_chunk``). When the producer has ended, ``commit(producer, stream)``
    decides: None lets the consumer see end-of-file and finish; a reason
    stops the consumer first and closes its input only after it has exited,
    so it never sees end-of-file. After ``stop_all`` nothing is committed.
    If the consumer stops reading early, the producer is stopped. A producer
    that writes nothing for ``idle_timeout`` seconds while vhbackup waits for
    it is stopped too (``Ended.stalled``); a slow consumer does not count.
    """
    tail_p: deque[str] = deque(maxlen=keep_stderr)
    tail_c: deque[str] = deque(maxlen=keep_stderr)
    threads: list[threading.Thread] = []
    cons = None
    prod = spawn(producer.argv, env=producer.env, missing_hint=producer.missing_hint, stdin=DEVNULL,
                 stdout=PIPE, stderr=PIPE, stop_signal=producer.stop_signal, death_signal=producer.death_signal,
                 on_stop=producer.on_stop)
    try:
        threads.append(_drain_thread(prod.stderr, tail_p, None))
        if consumer is not None:
            cons = spawn(consumer.argv, env=consumer.env, missing_hint=consumer.missing_hint, stdin=PIPE,
                         stdout=PIPE if on_consumer_line else DEVNULL, stderr=PIPE,
                         stop_signal=consumer.stop_signal, death_signal=consumer.death_signal,
                         on_stop=consumer.on_stop)
            _enlarge(cons.stdin.fileno())
            consumer_stderr = _drain_thread(cons.stderr, tail_c, on_consumer_stderr, cons, consumer.stop_signal)
            if consumer.poll is not None:
                _poll_thread(cons, consumer.poll, consumer.stop_signal)
            if on_consumer_line:
                threads.append(_line_thread(cons.stdout, on_consumer_line))
        _enlarge(prod.stdout.fileno())
        stream_ = Stream()
        watchdog = _Watchdog(prod, producer.stop_signal, idle_timeout)
        try:
            consumer_first = _relay(prod, cons, stream_, on_chunk, watchdog)
        finally:
            watchdog.finish()
        if consumer_first:
            stop(prod, producer.stop_signal)
        prod.wait()
        threads[0].join(timeout=10)
        ended_p = Ended(producer.tool, prod.returncode, tuple(tail_p), stalled=watchdog.fired)
        aborted = None
        if cons is not None:
            aborted = "interrupted" if cancelled() else commit(ended_p, stream_)
            if consumer_first and aborted is None:
                aborted = f"{consumer.tool} stopped reading"
            if aborted is None:
                _close(cons.stdin)
            else:
                stop(cons, consumer.stop_signal)
                _close(cons.stdin)
            cons.wait()
            consumer_stderr.join(timeout=10)
        for thread in threads[1:]:
            thread.join(timeout=10)
        ended_c = Ended(consumer.tool, cons.returncode, tuple(tail_c)) if cons is not None else None
        return Pumped(ended_p, ended_c, stream_, aborted, consumer_first)
    except BaseException:
        if cons is not None:
            stop(cons, consumer.stop_signal)
        stop(prod, producer.stop_signal)
        raise
    finally:
        _close(prod.stdout)
        if cons is not None:
            _close(cons.stdin)
        with _live_lock:
            _on_stop.pop(prod.pid, None)
            if cons is not None:
                _on_stop.pop(cons.pid, None)


class _Watchdog:
    """Stops a producer that writes nothing for ``timeout`` seconds while the relay waits to read from it."""

    def __init__(self, process: subprocess.Popen, signum: int, timeout: float | None):
        self.process = process
        self.signum = signum
        self.timeout = timeout
        self.waiting_since: float | None = None
        self.fired = False
        self.done = threading.Event()
        if timeout:
            threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self.done.wait(min(1.0, self.timeout / 4)):
            since = self.waiting_since
            if since is not None and time.monotonic() - since > self.timeout:
                self.fired = True
                stop(self.process, self.signum)
                return

    def finish(self) -> None:
        self.done.set()


def _relay(prod: subprocess.Popen, cons: subprocess.Popen | None, stream_: Stream,
           on_chunk: Callable[[bytes], None] | None, watchdog: _Watchdog) -> bool:
    """Copy until the producer's EOF; True when the consumer stopped reading first.

    One buffer, read into and written from: the bytes are copied into
    vhbackup once and out once (a dump of several GB goes through here on
    every run, on cores that restic and the database need).
    """
    src = prod.stdout.fileno()
    dst = cons.stdin.fileno() if cons is not None else None
    buffer = bytearray(CHUNK)
    whole = memoryview(buffer)
    while True:
        watchdog.waiting_since = time.monotonic()
        n = os.readv(src, [buffer])
        watchdog.waiting_since = None
        if not n:
            return False
        chunk = whole[:n]
        stream_.add(chunk)
        if on_chunk is not None:
            on_chunk(bytes(chunk))
        if dst is not None:
            try:
                _write_all(dst, chunk)
            except (BrokenPipeError, ConnectionResetError):
                return True


def _line_thread(pipe: IO[bytes], on_line: Callable[[str], None]) -> threading.Thread:
    def work() -> None:
        for raw in pipe:
            on_line(raw.decode("utf-8", "replace").rstrip("\n"))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _close(pipe: IO | None) -> None:
    if pipe is None:
        return
    try:
        pipe.close()
    except OSError:
        pass
