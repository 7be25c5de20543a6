"""Test helper: commit a week in a child process that pauses after its first upload, or inside it.

``python -m mta_assets_tests.storage.commit_in_child LAKE WEEK MARKER [--inside] FILE...``
commits each FILE (dataset=path) to the local lake at LAKE; after the first upload it
creates MARKER and sleeps, so the test can kill it with SIGKILL between two objects. With
``--inside`` it pauses once the first upload's first block is written instead, so the kill
leaves that upload's partial file behind. The pause is a subclass here, in the tests:
product code has no hook for it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from mta_assets.defs.resources import Lake
from mta_assets.storage.commit import commit_week


def pause() -> None:
    Path(sys.argv[3]).touch()
    time.sleep(600)


class PausingLake(Lake):
    inside: bool = False

    def put_file(self, source, key, content_type, metadata=None, **kwargs):
        if self.inside:
            return super().put_file(source, key, content_type, metadata, **kwargs, on_chunk=lambda *_: pause())
        stored = super().put_file(source, key, content_type, metadata, **kwargs)
        pause()
        return stored


def main() -> None:
    lake_url, week, _marker, *files = sys.argv[1:]
    inside = files[:1] == ["--inside"]
    objects = {}
    for spec in files[inside:]:
        dataset, path = spec.split("=", 1)
        objects[dataset] = (Path(path), Path(path).name, "application/octet-stream")
    commit_week(PausingLake(url=lake_url, inside=inside), "turnstile", week, objects, owner="child", wait_s=5)


if __name__ == "__main__":
    main()
