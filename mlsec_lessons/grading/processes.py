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
