"""flyte-rs warm worker template (crates/flyte-engine/src/backend/warm.rs starts it).

One per Python environment: imports flytekit once, then forks one process per task attempt,
so that an attempt starts in milliseconds instead of paying for the interpreter and
flytekit's import (docs/adr-008-warm-workers.md).

    python warm_template.py SOCKET MAX_FORKS MAX_GROWTH_BYTES

Protocol (one connection per attempt, lines of text):
  server -> template: one JSON line {entry, argv, env, cwd, log, exit_file, pid_file}
  template -> server: "pid <reaper pid> <retire 0|1>\n"  or  "error <message>\n"
  server -> reaper:   one byte: go (the server recorded the pid); EOF: do not run
  reaper -> server:   "exit <code>\n" (code as the shell wrapper writes it: 128+n = signal n)

The template stays single-threaded (checked before every fork): fork() copies only the
calling thread, so a lock held by another thread at that moment would stay locked forever
in the child. It lives while the server that started it does (EOF on stdin ends it);
reapers and tasks it forked live on in their own sessions, as the shell wrapper's do.
"""

import json
import os
import selectors
import signal
import socket
import sys
import traceback

# What each of flytekit's console scripts calls (their `[project.scripts]` entries).
ENTRIES = {
    "pyflyte-execute": "execute_task_cmd",
    "pyflyte-fast-execute": "fast_execute_task_cmd",
    "pyflyte-map-execute": "map_execute_task_cmd",
}


def rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def thread_count():
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1


def run_task(request, entrypoint):
    """In the forked task process: become the attempt's process and run flytekit's command."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # tempfile caches TMPDIR's answer; the attempt's environment decides it.
    import tempfile

    tempfile.tempdir = None
    argv = request["argv"]
    # sys.path as a fresh interpreter running the console script builds it: the script's
    # directory, PYTHONPATH, then the interpreter's own entries.
    python_path = [p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.path.dirname(argv[0])] + python_path + BASE_PATH
    sys.argv = list(argv)
    import logging

    import flytekit.loggers as loggers

    # flytekit configures its loggers from the environment at import: again, from this one.
    for lg in (loggers.logger, loggers.user_space_logger, loggers.developer_logger):
        for h in list(lg.handlers):
            lg.removeHandler(h)
    loggers.initialize_global_loggers()
    logging.captureWarnings(False)

    code = 0
    try:
        entrypoint(args=argv[1:], prog_name=os.path.basename(argv[0]))
    except SystemExit as e:
        # As the interpreter maps sys.exit's argument to an exit status.
        if e.code is None:
            code = 0
        elif isinstance(e.code, int):
            code = e.code & 0xFF
        else:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    # What interpreter shutdown does: wait for non-daemon threads, run atexit, flush.
    try:
        import threading

        threading._shutdown()
    except BaseException:
        pass
    try:
        import atexit

        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass
    os._exit(code)


def reaper(conn, request, entrypoint, closing):
    """In the forked reaper: own session and group, waits for the go byte, runs the task
    in a child and writes its exit status where the shell wrapper writes it."""
    try:
        os.setsid()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        # Caught, not ignored (the task would inherit SIG_IGN): the reaper outlives the
        # task's grace period after a SIGTERM to the group, as the wrapper's `trap : TERM INT`.
        signal.signal(signal.SIGTERM, lambda *_: None)
        signal.signal(signal.SIGINT, lambda *_: None)
        for fd in closing:
            try:
                fd.close()
            except OSError:
                pass
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.chdir(request["cwd"])
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        go = conn.recv(1)
        if not go:
            # The server died before it recorded us (the next one starts the attempt), or
            # gave up on this fork: drop the record if it is ours (the attempt may already
            # run as a plain process that recorded itself there).
            try:
                with open(request["pid_file"]) as f:
                    ours = f.read().split(" ")[0] == str(os.getpid())
                if ours:
                    os.unlink(request["pid_file"])
            except (OSError, IndexError):
                pass
            os._exit(0)
        child = os.fork()
        if child == 0:
            conn.close()
            run_task(request, entrypoint)
            os._exit(1)
        while True:
            try:
                _, status = os.waitpid(child, 0)
                break
            except ChildProcessError:
                status = 1 << 8
                break
        if os.WIFSIGNALED(status):
            code = 128 + os.WTERMSIG(status)
        else:
            code = os.waitstatus_to_exitcode(status) & 0xFF
        with open(request["exit_file"], "w") as f:
            f.write(f"{code}\n")
        try:
            conn.sendall(f"exit {code}\n".encode())
        except OSError:
            pass
        os._exit(code)
    except BaseException:
        traceback.print_exc()
        os._exit(1)


def unlink(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def serve(sock_path, max_forks, max_growth):
    from flytekit.bin import entrypoint as ep

    entries = {name: getattr(ep, func) for name, func in ENTRIES.items()}
    # Reapers are not waited for here: ignoring SIGCHLD lets the kernel reap them.
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    unlink(sock_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(sock_path)
    listener.listen(64)
    base_rss = rss_bytes()
    forks = 0
    stdin = sys.stdin.buffer
    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ, "accept")
    sel.register(stdin, selectors.EVENT_READ, "stdin")
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            if key.data == "stdin":
                if not os.read(stdin.fileno(), 4096):
                    # The server is gone (or replaced us): so are we.
                    unlink(sock_path)
                    os._exit(0)
                continue
            conn, _ = listener.accept()
            try:
                conn.settimeout(10)
                request = json.loads(conn.makefile("rb").readline())
                conn.settimeout(None)
                entrypoint = entries[request["entry"]]
                threads = thread_count()
                if threads != 1:
                    conn.sendall(f"error the template runs {threads} threads\n".encode())
                    os._exit(1)
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    sel.close()
                    reaper(conn, request, entrypoint, [listener, stdin])
                forks += 1
                retire = forks >= max_forks or rss_bytes() - base_rss > max_growth
                conn.sendall(f"pid {pid} {int(retire)}\n".encode())
                conn.close()
                if retire:
                    listener.close()
                    unlink(sock_path)
                    os._exit(0)
            except Exception as e:  # one bad request never ends the template
                try:
                    msg = str(e).replace("\n", " ")
                    conn.sendall(f"error {type(e).__name__}: {msg}\n".encode())
                    conn.close()
                except OSError:
                    pass


if __name__ == "__main__":
    # The interpreter's own sys.path without this script's directory.
    BASE_PATH = sys.path[1:]
    try:
        import flytekit.bin.entrypoint  # noqa: F401
    except BaseException as e:
        print(f"error cannot import flytekit: {e}".replace("\n", " "), flush=True)
        sys.exit(3)
    serve(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
