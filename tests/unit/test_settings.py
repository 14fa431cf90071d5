"""R23: policy numbers from config/default.toml, an override file and the environment,
validated at start-up with a message naming the bad key."""

import pytest

from authsvc import settings as settings_module
from authsvc.settings import ConfigError, load_settings


def load(overrides=None, **env):
    return load_settings(overrides, environ=env)


def fails(match, overrides=None, **env):
    with pytest.raises(ConfigError) as exc:
        load(overrides, **env)
    message = str(exc.value)
    assert match in message, message
    return message


def write(tmp_path, body, name="override.toml"):
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return str(path)


def test_defaults_load_with_the_documented_values():
    s = load()
    assert (s.password.min_length, s.password.max_length, s.password.min_classes,
            s.password.history) == (10, 256, 3, 5)
    assert (s.lockout.max_failures, s.lockout.lock_minutes) == (5, 30)
    assert (s.identifiers.reuse_after_days, s.identifiers.disable_after_days) == (365, 90)
    assert s.identifiers.four_eyes is False
    assert s.accounts.cleanup_business_days == 14
    assert s.sessions.idle_minutes == 15
    assert (s.argon2.time_cost, s.argon2.memory_cost_kib, s.argon2.parallelism) == (3, 65536, 4)


def test_default_database_is_sqlite_in_the_instance_folder(tmp_path):
    s = load({"paths": {"instance_dir": str(tmp_path)}})
    assert s.database_url == f"sqlite:///{tmp_path.resolve() / 'authsvc.db'}"
    s = load({"database": {"url": "postgresql+psycopg://db/authsvc"}})
    assert s.database_url == "postgresql+psycopg://db/authsvc"


def test_environment_overrides_with_type_coercion():
    s = load(AUTHSVC__LOCKOUT__MAX_FAILURES="3", AUTHSVC__IDENTIFIERS__FOUR_EYES="yes",
             AUTHSVC__PASSWORD__MIN_LENGTH=" 12 ", AUTHSVC__DATABASE__URL="sqlite:///x.db")
    assert s.lockout.max_failures == 3 and isinstance(s.lockout.max_failures, int)
    assert s.identifiers.four_eyes is True
    assert s.password.min_length == 12
    assert s.database.url == "sqlite:///x.db"


@pytest.mark.parametrize(("raw", "value"), [("true", True), ("1", True), ("on", True),
                                            ("False", False), ("0", False), ("no", False)])
def test_boolean_spellings_from_the_environment(raw, value):
    assert load(AUTHSVC__IDENTIFIERS__FOUR_EYES=raw).identifiers.four_eyes is value


def test_environment_names_are_case_insensitive_after_the_prefix():
    assert load(AUTHSVC__Lockout__Lock_Minutes="45").lockout.lock_minutes == 45


def test_unrelated_environment_variables_are_ignored():
    assert load(PATH="/bin", AUTHSVC_OTHER="x", authsvc__lockout__max_failures="2"
                ).lockout.max_failures == 5


def test_os_environ_is_used_when_no_environ_is_given(monkeypatch):
    monkeypatch.setenv("AUTHSVC__LOCKOUT__MAX_FAILURES", "7")
    assert load_settings().lockout.max_failures == 7


def test_config_file_overrides_defaults(tmp_path):
    path = write(tmp_path, "[lockout]\nmax_failures = 4\n\n[identifiers]\nfour_eyes = true\n")
    s = load(AUTHSVC_CONFIG=path)
    assert s.lockout.max_failures == 4
    assert s.identifiers.four_eyes is True
    assert s.lockout.lock_minutes == 30  # untouched keys keep their defaults


def test_precedence_is_file_then_environment_then_overrides(tmp_path):
    path = write(tmp_path, "[lockout]\nmax_failures = 4\nlock_minutes = 40\n"
                           "[sessions]\nidle_minutes = 20\n")
    s = load({"lockout": {"max_failures": 2}}, AUTHSVC_CONFIG=path,
             AUTHSVC__LOCKOUT__MAX_FAILURES="3", AUTHSVC__LOCKOUT__LOCK_MINUTES="50")
    assert s.lockout.max_failures == 2  # overrides win
    assert s.lockout.lock_minutes == 50  # environment beats the file
    assert s.sessions.idle_minutes == 20  # the file beats the defaults


def test_unknown_section():
    fails("[passwrd]", {"passwrd": {"min_length": 12}})
    fails("[bogus]", AUTHSVC__BOGUS__KEY="1")


def test_unknown_key():
    fails("lockout.max_failure", {"lockout": {"max_failure": 3}})
    fails("password.minlength", AUTHSVC__PASSWORD__MINLENGTH="12")


def test_unknown_key_in_the_config_file(tmp_path):
    path = write(tmp_path, "[sessions]\nidle_minute = 5\n")
    fails("sessions.idle_minute", AUTHSVC_CONFIG=path)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"lockout": {"max_failures": "three"}}, "lockout.max_failures"),
        ({"lockout": {"max_failures": 2.5}}, "lockout.max_failures"),
        ({"lockout": {"max_failures": True}}, "lockout.max_failures"),
        ({"identifiers": {"four_eyes": 1}}, "identifiers.four_eyes"),
        ({"identifiers": {"four_eyes": "maybe"}}, "identifiers.four_eyes"),
        ({"database": {"url": 5}}, "database.url"),
        ({"server": {"port": [8080]}}, "server.port"),
    ],
)
def test_wrong_type(overrides, key):
    fails(key, overrides)


def test_wrong_type_from_the_environment():
    fails("lockout.max_failures", AUTHSVC__LOCKOUT__MAX_FAILURES="five")
    fails("identifiers.four_eyes", AUTHSVC__IDENTIFIERS__FOUR_EYES="si")


def test_wrong_type_in_the_config_file(tmp_path):
    path = write(tmp_path, "[argon2]\ntime_cost = 2.0\n")
    fails("argon2.time_cost", AUTHSVC_CONFIG=path)


@pytest.mark.parametrize(
    ("section", "key", "value"),
    [
        ("password", "min_length", 9),  # R1: at least 10 characters can not be weakened
        ("password", "min_classes", 2),
        ("password", "max_length", 5000),
        ("lockout", "max_failures", 0),
        ("lockout", "lock_minutes", 0),
        ("lockout", "max_failures", -1),
        ("argon2", "time_cost", 0),
        ("argon2", "salt_len", 8),
        ("sessions", "idle_minutes", 0),
        ("server", "port", 70000),
        ("identifiers", "disable_after_days", 0),
    ],
)
def test_out_of_range(section, key, value):
    message = fails(f"{section}.{key}", {section: {key: value}})
    assert "out of range" in message
    assert str(value) in message


def test_out_of_range_from_the_environment():
    fails("lockout.max_failures", AUTHSVC__LOCKOUT__MAX_FAILURES="0")


def test_range_limits_are_inclusive():
    assert load({"lockout": {"max_failures": 1}}).lockout.max_failures == 1
    assert load({"lockout": {"max_failures": 100}}).lockout.max_failures == 100
    assert load({"password": {"min_length": 10}}).password.min_length == 10


def test_max_length_below_min_length():
    message = fails("password.max_length", {"password": {"min_length": 64, "max_length": 32}})
    assert "password.min_length" in message


def test_argon2_memory_must_cover_parallelism():
    message = fails("argon2.memory_cost_kib", {"argon2": {"memory_cost_kib": 64,
                                                          "parallelism": 16}})
    assert "argon2.parallelism" in message
    assert load({"argon2": {"memory_cost_kib": 128, "parallelism": 16}}).argon2.parallelism == 16


def test_missing_config_file(tmp_path):
    missing = str(tmp_path / "nope.toml")
    message = fails("AUTHSVC_CONFIG", AUTHSVC_CONFIG=missing)
    assert missing in message


def test_invalid_toml(tmp_path):
    path = write(tmp_path, "[lockout\nmax_failures = \n")
    message = fails(path, AUTHSVC_CONFIG=path)
    assert "TOML" in message


def test_a_section_that_is_not_a_table(tmp_path):
    path = write(tmp_path, "lockout = 5\n")
    fails("[lockout]", AUTHSVC_CONFIG=path)


def test_malformed_environment_name():
    fails("AUTHSVC__LOCKOUT", AUTHSVC__LOCKOUT="5")
    fails("AUTHSVC__LOCKOUT__MAX__FAILURES", AUTHSVC__LOCKOUT__MAX__FAILURES="5")


def test_a_key_missing_from_the_defaults_is_named(tmp_path, monkeypatch):
    text = settings_module.DEFAULT_FILE.read_text(encoding="utf-8")
    trimmed = "\n".join(line for line in text.splitlines()
                        if not line.startswith("lock_minutes"))
    path = tmp_path / "default.toml"
    path.write_text(trimmed, encoding="utf-8")
    monkeypatch.setattr(settings_module, "DEFAULT_FILE", path)
    fails("lockout.lock_minutes", None)


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
