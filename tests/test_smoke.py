from modelreg import Store


def test_register_promote_resolve(store: Store, model_file):
    mv = store.register("fraud", [model_file()], version="1.0.0").version
    store.promote("fraud@1.0.0", "production")
    assert store.resolve("fraud@production").id == mv.id
