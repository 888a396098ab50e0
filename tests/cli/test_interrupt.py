import os
import signal
import subprocess
import sys
import time

from modelreg import Store


def test_ctrl_c_during_register_exits_130_and_leaves_nothing(store, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as fh:
        for _ in range(256):
            fh.write(os.urandom(1 << 20))
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "modelreg",
            "register",
            "big",
            str(big),
            "--version",
            "1.0.0",
            "--no-code",
            "--store",
            str(store.root),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # wait until the copy has started (a temp file appears in tmp/), then press Ctrl-C
    deadline = time.monotonic() + 30
    while not list((store.root / "tmp").iterdir()) and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.005)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:  # the copy won the race: then it must be complete
        assert Store.open(store.root).resolve("big@1.0.0").files[0].size == big.stat().st_size
        return
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list((store.root / "tmp").iterdir()) == []
    assert list(store.objects.iter_digests()) == []
    assert not (store.root / "models" / "big").exists()
    assert Store.open(store.root).verify().ok
