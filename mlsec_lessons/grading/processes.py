"""A process's descendants, read from ``/proc`` (Linux; elsewhere there are none to find)."""
import os


def children(pid):
    """The direct children of ``pid``, from /proc."""
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                found += [int(p) for p in f.read().split()]
    except OSError:
        pass
    return found


def descendants(pid):
    todo, seen = [pid], []
    while todo:
        for child in children(todo.pop()):
            if child not in seen:
                seen.append(child)
                todo.append(child)
    return seen


def kill_tree(root, include_root=True, rounds=50):
    """SIGKILL ``root``'s whole tree, frozen first so that nothing in it can fork meanwhile.

    Each round stops (SIGSTOP) the descendants not seen yet; a child forked before its parent
    stopped is found in the next round. When a round finds nothing new, every process seen is
    killed at once.
    """
    import signal

    seen = []
    for _ in range(rounds):
        new = [pid for pid in descendants(root) if pid not in seen]
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        seen += new
    for pid in ([root] if include_root else []) + seen:
        _signal(pid, signal.SIGKILL)
    return seen


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:  # gone already
        pass
