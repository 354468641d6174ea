"""The README's settings table is generated from the models; it must not drift."""

from llmops import PROJECT_DIR
from llmops.settings import reference


def test_settings_table_matches_the_models():
    readme = (PROJECT_DIR / "README.md").read_text()
    begin, end = readme.index(reference.BEGIN), readme.index(reference.END) + len(reference.END)
    assert readme[begin:end] == reference.table(), (
        "run: python -m llmops.settings.reference, paste into README.md"
    )
