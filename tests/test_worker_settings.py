"""The worker reads gunicorn's settings as plain attributes once it has forked
(worker.settle_settings): every setting and every derived property reads as before."""

from __future__ import annotations

import pytest
from gunicorn.config import Config

from zai_proxy.worker import settle_settings


def _config() -> Config:
    cfg = Config()
    cfg.set("keepalive", 65)
    cfg.set("threads", 7)
    cfg.set("bind", ["127.0.0.1:9999"])
    cfg.set("forwarded_allow_ips", "10.0.0.1,127.0.0.1")
    return cfg


def test_every_setting_reads_the_same_without_configs_lookup(monkeypatch):
    cfg = _config()
    before = {name: getattr(cfg, name) for name in cfg.settings}
    derived = (cfg.is_ssl, cfg.address, cfg.proc_name, cfg.sendfile, cfg.reuse_port,
               cfg.forwarded_allow_networks())
    settle_settings(cfg)

    def no_lookup(self, name):
        raise AssertionError(f"Config.__getattr__({name!r}) after settle_settings")

    monkeypatch.setattr(Config, "__getattr__", no_lookup)
    assert {name: getattr(cfg, name) for name in cfg.settings} == before
    assert (cfg.is_ssl, cfg.address, cfg.proc_name, cfg.sendfile, cfg.reuse_port,
            cfg.forwarded_allow_networks()) == derived
    assert cfg.keepalive == 65 and cfg.threads == 7


def test_settings_stay_read_only():
    cfg = _config()
    settle_settings(cfg)
    with pytest.raises(AttributeError):
        cfg.keepalive = 1
