"""Several sessions (processes) creating, browsing, renaming, stopping and deleting runs
while the background worker and a CLI `train` train: no "database is locked" reaches
anyone, no run is lost or duplicated, trainings run one at a time in queue order."""

import itertools
import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from kmnist_core.store import RunStore

from conftest import PROJECT_ROOT, wait_until

pytestmark = pytest.mark.process

SESSIONS = 3
OPERATIONS = 40

SESSION = textwrap.dedent("""
    import json, random, sys, time
    sys.path.insert(0, {root!r})
    from kmnist_core.config import make_config
    from kmnist_core.store import RunStore, StoreError
    from kmnist_core.worker import ensure_worker

    home, data_dir, number = {home!r}, {data!r}, {number}
    rng = random.Random(number)
    store = RunStore(home)
    mine, names, deleted, refused, unexpected = [], {{}}, [], 0, []
    for step in range({operations}):
        try:
            action = rng.choice(["create"] * 3 + ["list"] * 4 + ["get"] * 2 + ["rename", "delete", "stop"])
            if action == "create" and len(names) < 5:
                config = make_config("overfit", hidden_units=(16,), epochs=1, batch_size=50, seed=step)
                name = f"session {{number}} run {{step}}"
                run_id = store.create_run(config, name=name, data_dir=data_dir)
                mine.append(run_id)
                names[run_id] = name
                ensure_worker(store, idle_exit=3.0)  # what the app's submit does
            elif action == "list":
                store.list_runs()
            elif action == "get" and mine:
                store.get(rng.choice(mine))
            elif action == "rename" and mine:
                run_id = rng.choice(mine)
                names[run_id] = names[run_id] + " (renamed)"
                store.rename(run_id, names[run_id])
            elif action == "delete" and mine:
                run_id = rng.choice(mine)
                try:
                    store.delete(run_id)
                    mine.remove(run_id)
                    deleted.append(run_id)
                    names.pop(run_id)
                except StoreError as error:
                    assert "is training" in str(error), error
                    refused += 1
            elif action == "stop" and mine:
                store.request_stop(rng.choice(mine))
        except Exception as error:
            unexpected.append(f"{{type(error).__name__}}: {{error}}")
        time.sleep(rng.uniform(0, 0.5))  # a user's pause between clicks: the random interleaving is the test
    print(json.dumps({{"names": names, "deleted": deleted, "refused": refused, "unexpected": unexpected}}))
""")


def _session(home, data_dir, number):
    code = SESSION.format(root=str(PROJECT_ROOT), home=str(home), data=str(data_dir),
                          number=number, operations=OPERATIONS)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_sessions_worker_and_cli_at_once(home, synthetic_dir):
    store = RunStore(home)
    cli = subprocess.Popen(
        [sys.executable, "-m", "kmnist_core", "--home", str(home), "--data-dir", str(synthetic_dir),
         "train", "--variant", "overfit", "--hidden-units", "16", "--epochs", "2",
         "--batch-size", "50", "--name", "from the CLI"],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    sessions = [_session(home, synthetic_dir, number) for number in range(SESSIONS)]
    reports = []
    for session in sessions:
        out, err = session.communicate(timeout=300)
        assert session.returncode == 0, err
        assert "locked" not in err
        reports.append(json.loads(out))
    _, cli_err = cli.communicate(timeout=300)
    assert cli.returncode == 0, cli_err
    assert "locked" not in cli_err
    assert wait_until(lambda: not store.list_runs(statuses=("queued", "running")), timeout=240), \
        [(r.id, r.status) for r in store.list_runs()]

    runs = store.list_runs()
    assert all(report["unexpected"] == [] for report in reports), reports
    expected = {int(i): name for report in reports for i, name in report["names"].items()}
    cli_runs = [r for r in runs if r.name == "from the CLI"]
    assert len(cli_runs) == 1 and cli_runs[0].status == "completed"
    assert {r.id: r.name for r in runs if r.id != cli_runs[0].id} == expected  # none lost, none extra
    assert len({r.id for r in runs}) == len(runs)
    assert all(r.status in ("completed", "cancelled", "stopped") for r in runs), [(r.id, r.status, r.error) for r in runs]
    deleted = [i for report in reports for i in report["deleted"]]
    assert not any(store.run_dir(i).exists() for i in deleted)
    trained = sorted((store.get(r.id) for r in runs if r.started_at), key=lambda r: r.started_at)
    assert [r.id for r in trained] == sorted(r.id for r in trained)  # queue order
    for earlier, later in itertools.pairwise(trained):
        assert earlier.finished_at <= later.started_at  # one at a time
    with sqlite3.connect(store.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert "locked" not in (home / "worker.log").read_text()
    print(f"\n{SESSIONS} sessions x {OPERATIONS} operations + worker + CLI: {len(runs)} runs kept, "
          f"{len(deleted)} deleted, {len(trained)} trained one at a time, "
          f"{sum(r['refused'] for r in reports)} deletes of a training run refused")
