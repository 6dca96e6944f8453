from emulator.images import default_recipes, recipes
from emulator.settings import Settings


def test_recipes_that_need_other_registries_are_built_only_when_named() -> None:
    settings = Settings()
    found = recipes(settings)
    assert {"carta", "firefly"} <= {name for name, r in found.items() if r.external}
    defaults = default_recipes(settings)
    assert "carta" not in defaults and "firefly" not in defaults
    assert defaults[:3] == ["base", "gateway", "service"]  # the platform's own images first
    assert {"notebook", "desktop", "ds9", "terminal", "marimo"} <= set(defaults)
