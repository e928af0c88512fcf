from __future__ import annotations

import pickle

import pytest

from jepa_pipe.datasets.files import read_lines, read_plain_pickle, safe_relpath
from jepa_pipe.datasets.manifest import ManifestError


@pytest.mark.parametrize(
    "rel,expected",
    [
        ("a/b.mp4", "a/b.mp4"),
        ("./a//b.mp4", "a/b.mp4"),
        ("a/../b.mp4", "b.mp4"),
        ("a\\b.avi", "a/b.avi"),
        ("-4wsuPCjDBc_5_15.avi", "-4wsuPCjDBc_5_15.avi"),
    ],
)
def test_safe_relpath_normalises(rel, expected):
    assert safe_relpath(rel, where="t") == expected


@pytest.mark.parametrize("rel", ["../x.mp4", "a/../../x", "/etc/passwd", "C:/x.avi", "..", ""])
def test_safe_relpath_refuses_escape(rel):
    with pytest.raises(ManifestError, match="t: "):
        safe_relpath(rel, where="t")


def test_read_lines_crlf_bom_and_blanks(tmp_path):
    p = tmp_path / "l.txt"
    p.write_bytes(b"\xef\xbb\xbf1 A\r\n\r\n2 B\r\n")
    assert list(read_lines(p)) == [(1, "1 A"), (3, "2 B")]


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_plain_pickle_accepts_containers_and_refuses_code(tmp_path):
    good = tmp_path / "g.pkl"
    good.write_bytes(pickle.dumps({"v": [["a", "b"], "c"], "n": (1, 2.0, None, True)}))
    assert read_plain_pickle(good) == {"v": [["a", "b"], "c"], "n": (1, 2.0, None, True)}
    marker = tmp_path / "pwned"
    bad = tmp_path / "b.pkl"
    bad.write_bytes(pickle.dumps({"v": _Evil(str(marker))}))
    with pytest.raises(ManifestError, match=r"refused to load global .*open"):
        read_plain_pickle(bad)
    assert not marker.exists()
    trunc = tmp_path / "t.pkl"
    trunc.write_bytes(good.read_bytes()[:-3])
    with pytest.raises(ManifestError, match="not a plain-data pickle"):
        read_plain_pickle(trunc)
