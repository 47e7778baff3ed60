"""The `.env` that holds the baked project's SECRET_KEY can be read by its owner only."""

from __future__ import annotations

import stat

from bakery import cookiecutter_cli, load_hook

post_gen = load_hook("post_gen_project")


def mode_of(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_env_file_is_written_owner_only(tmp_path):
    """`write_env_file` creates `.env` with mode 0600, whatever the umask would allow."""
    assert post_gen.write_env_file(tmp_path)
    assert mode_of(tmp_path / ".env") == 0o600


def test_the_cookiecutter_command_bakes_an_owner_only_env_file(tmp_path):
    """Baked through the real `cookiecutter` command, the project's `.env` is mode 0600."""
    cookiecutter_cli(tmp_path)
    assert mode_of(tmp_path / "gatekeeper_app" / ".env") == 0o600
