"""Claiming an output folder for one run or one study, so that two commands never write into one.

Two ``designgym train`` runs given the same ``--out`` and ``--run-name`` would interleave their monitor
files and leave the model of one beside the settings of the other; two studies tuned into one folder
would mix their exports and TensorBoard runs. A check that a folder is empty followed by writing into it
leaves a window in which both commands pass the check, so the claims here are single steps of the file
system:

- a run folder is claimed with an exclusive lock on the folder itself (``flock``), held until the
  process ends, whatever way it ends; whoever holds it is the only writer, and a new run also needs
  the folder empty. ``--resume`` claims the same lock, so a run cannot
  be resumed twice at once, nor while it still trains;
- a tuning folder belongs to one study: its ``.designgym-study.json`` names the study (and the storage
  it was first tuned in), and is put
  in place with a hard link, which fails when the file exists (first come, first served). Processes
  that join the same study share the folder, as they are meant to.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no lock; the emptiness check alone guards a new run folder
    fcntl = None  # type: ignore[assignment]

STUDY_FILE = ".designgym-study.json"


class RunFolderClaim:
    """The claim of one process on a run folder; :meth:`release` (or the end of the process) frees it."""

    def __init__(self, run_dir: Path, fd: int) -> None:
        self.run_dir = run_dir
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None

    def __enter__(self) -> RunFolderClaim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def claim_run_folder(run_dir: Path, resume: bool = False) -> RunFolderClaim:
    """Make ``run_dir`` (if needed) and claim it for this process.

    Raises:
        FileExistsError: when another process holds the folder, or (for a new run) it holds files.
    """
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FileExistsError(f"{run_dir} is a file, not a folder; choose another --run-name or --out") from None
    # The lock is on the folder itself: no file of its own in the run folder, nothing touched by a refusal.
    fd = os.open(run_dir, os.O_RDONLY)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                then = "wait for it to end, then resume" if resume else "choose another --run-name or --out"
                raise FileExistsError(f"run folder {run_dir} is in use by another designgym process; {then}") from None
            except OSError:  # a file system without locks on folders (some network ones): the check below only
                pass
        if not resume and any(run_dir.iterdir()):
            raise FileExistsError(
                f"run folder {run_dir} already exists and is not empty; choose another --run-name or --out"
            )
    except BaseException:
        os.close(fd)
        raise
    return RunFolderClaim(run_dir, fd)


def claim_new_run_folder(out: Path, run_name: str | None, default_name: str) -> RunFolderClaim:
    """A new run folder under ``out``, claimed: ``run_name``, or ``default_name`` (``-2``, ``-3``... added
    when another run took it in the same second; a name the user gave is theirs to change)."""
    if run_name:
        return claim_run_folder(out / run_name)
    for attempt in range(1, 100):
        try:
            return claim_run_folder(out / (default_name if attempt == 1 else f"{default_name}-{attempt}"))
        except FileExistsError:
            continue
    raise FileExistsError(f"run folders {out / default_name}-* are all taken; pass --run-name")


def refuse_files_in_the_way(folders: dict[str, str | None]) -> None:
    """Raise a ``ValueError`` naming the flag when a file stands where one of ``folders`` (by flag), or a
    folder above it, should be: said before a run starts, not when it first writes there."""
    for flag, folder in folders.items():
        if folder is None:
            continue
        blocker = next((part for part in (Path(folder), *Path(folder).parents) if part.exists()), None)
        if blocker is not None and not blocker.is_dir():
            where = f"{flag} {folder}" if blocker == Path(folder) else f"{flag} {folder}: {blocker}"
            raise ValueError(f"{where} is a file, not a folder; move it, or pass another {flag}")


def claim_study_folder(out: Path, study_name: str, storage: str) -> None:
    """Claim the tuning folder ``out`` for the study ``study_name`` in ``storage``; a process joining the
    same study passes, another study is refused.

    Raises:
        FileExistsError: when ``out`` holds another study's results.
    """
    mine = {"study_name": study_name, "storage": storage}
    path = out / STUDY_FILE
    # A folder of something else (a run folder, a project) is not a study's; one that tune wrote before
    # studies claimed their folders has its commands.txt.
    if not path.exists() and any(out.iterdir()) and not (out / "commands.txt").exists():
        raise FileExistsError(f"--out {out} holds files that are not a study's; pass an empty or new folder")
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=out, prefix=".study-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(mine, indent=2) + "\n")
            os.link(tmp, path)  # one step, and it fails when another process was first
        except FileExistsError:
            pass
        finally:
            Path(tmp).unlink(missing_ok=True)
    try:
        theirs = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FileExistsError(f"{path} cannot be read ({exc}); it should name the study of tuning folder {out}. "
                              "Choose another --out, or fix or remove that file") from None
    # By name only: one storage is spelt many ways (a relative or an absolute sqlite path).
    if theirs.get("study_name") != study_name:
        raise FileExistsError(
            f"tuning folder {out} holds the results of study {theirs.get('study_name')!r} in "
            f"{theirs.get('storage')}; choose another --out (or --study-name {theirs.get('study_name')} "
            f"--storage {theirs.get('storage')} to join that study)"
        )
