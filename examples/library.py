"""Use mreg as a library: register, promote through a gate, resolve what production runs."""

import tempfile
from pathlib import Path

from modelreg import GateFailed, Store

with tempfile.TemporaryDirectory() as tmp:
    store = Store.init(tmp)
    model = Path(tmp) / "model.pkl"
    for version, f1 in (("1.0.0", 0.91), ("1.1.0", 0.85)):
        model.write_bytes(f"weights {version}".encode())
        store.register(
            "churn", [model], version=version, metrics={"test": {"f1": f1}}, detect_code=False
        )
    (Path(tmp) / ".modelreg" / "config.yaml").write_text(
        "schema: mreg/v1\nkind: StoreConfig\nformat: 1\ngates:\n  production: ['test.f1 >= 0.9']\n"
    )
    store = Store.open(tmp)
    store.promote("churn@1.0.0", "production", reason="first release")
    try:
        store.promote("churn@1.1.0", "production")
    except GateFailed as exc:
        print("refused:", exc)
    prod = store.resolve("churn@production")
    print(f"production runs churn@{prod.version} ({prod.short_id}), test f1 {prod.metric('test.f1')}")
