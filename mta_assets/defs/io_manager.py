"""One IO manager for every weekly asset: files in, files out, never pickles.

Each asset declares its dataset and file extension in its definition metadata
(``lake/dataset``, ``lake/extension``); the IO manager stores the week's local file
under ``Lake.key_for(dataset, week, extension)`` and hands downstream assets a
``{week: local Path}`` mapping, so a 33 MB file is streamed, not loaded, and a
Parquet table is read only by the code that needs it.
"""

from typing import Any

import dagster as dg
from pydantic import Field

from mta_assets.batches import WeekBatch, map_weeks
from mta_assets.storage.lake import Lake, StoredObject

DATASET_KEY = "lake/dataset"
EXTENSION_KEY = "lake/extension"
# [issue 14, ridership: minimal, for the lead to re-do in issue 11] AssetIn metadata: load only
# the weeks whose object exists (the previous-week input of ridership_daily may have none).
MISSING_WEEKS_OK = "lake/missing_weeks_ok"


def lake_metadata(dataset: str, extension: str) -> dict[str, str]:
    """Definition metadata telling the IO manager where an asset's weeks live."""
    return {DATASET_KEY: dataset, EXTENSION_KEY: extension}


def _layout(definition_metadata, asset_key: dg.AssetKey) -> tuple[str, str]:
    try:
        return definition_metadata[DATASET_KEY], definition_metadata[EXTENSION_KEY]
    except (KeyError, TypeError):
        raise dg.Failure(
            f"asset {asset_key.to_user_string()} has no {DATASET_KEY}/{EXTENSION_KEY} definition metadata; "
            "the lake IO manager cannot tell where its objects live"
        ) from None


class LakeIOManager(dg.ConfigurableIOManager):
    """Stores weekly files in the lake (GCS or a local folder) atomically and verified."""

    lake: dg.ResourceDependency[Lake]
    max_workers: int = Field(default=0, description="Parallel uploads in a range; 0 means one per CPU.")

    def handle_output(self, context: dg.OutputContext, obj: WeekBatch) -> None:
        if not isinstance(obj, WeekBatch):
            raise dg.Failure(f"the lake IO manager stores WeekBatch values, got {type(obj).__name__}")
        dataset, extension = _layout(context.definition_metadata, context.asset_key)
        weeks = list(context.asset_partition_keys)
        failures = {week: reason for week, reason in obj.failures.items() if week in weeks}
        to_store = [week for week in weeks if week in obj.files]
        for week in weeks:
            if week not in obj.files and week not in failures:
                failures[week] = f"week {week}: the asset produced no file"

        def store(week: str) -> StoredObject:
            item = obj.files[week]
            key = self.lake.key_for(dataset, week, extension)

            def progress(chunk: int, sent: int, total: int) -> None:
                context.log.debug(f"week {week}: uploaded chunk {chunk} ({sent:,} of {total:,} bytes) to {key}")

            return self.lake.put_file(item.path, key, item.content_type, on_chunk=progress)

        stored, upload_errors = map_weeks(to_store, store, self.max_workers)
        failures.update({week: str(exc) for week, exc in upload_errors.items()})

        if not failures:
            context.add_output_metadata(_stored_metadata(stored))
            return
        # Only some weeks succeeded: record those as materialized, then fail naming the others.
        for week, item in stored.items():
            context.log_event(
                dg.AssetMaterialization(
                    asset_key=context.asset_key,
                    partition=week,
                    metadata={**obj.metadata.get(week, {}), **item.metadata()},
                )
            )
        failed = sorted(failures)
        raise dg.Failure(
            allow_retries=obj.retryable or bool(upload_errors),
            description=f"{len(failed)} of {len(weeks)} week(s) failed: "
            + "; ".join(failures[week] for week in failed),
            metadata={
                "failed_weeks": dg.MetadataValue.json(failed),
                "stored_weeks": dg.MetadataValue.json(sorted(stored)),
                "reasons": dg.MetadataValue.json({week: failures[week] for week in failed}),
            },
        )

    def load_input(self, context: dg.InputContext):
        upstream = context.upstream_output
        dataset, extension = _layout(upstream.definition_metadata if upstream else None, context.asset_key)
        paths = {}
        missing_ok = bool((context.definition_metadata or {}).get(MISSING_WEEKS_OK))  # [issue 14]
        for week in context.asset_partition_keys:
            key = self.lake.key_for(dataset, week, extension)
            if missing_ok and self.lake.stat(key) is None:  # [issue 14]
                continue
            paths[week] = self.lake.local_path(key)
        return paths


def _stored_metadata(stored: dict[str, StoredObject]) -> dict[str, Any]:
    if len(stored) == 1:
        return next(iter(stored.values())).metadata()
    objects = list(stored.values())
    total = sum(item.size for item in objects)
    seconds = sum(item.seconds for item in objects)
    rows = "\n".join(f"| {week} | {item.uri} | {item.size:,} | {item.crc32c} |" for week, item in stored.items())
    return {
        "stored_objects": len(objects),
        "stored_bytes": total,
        "upload_seconds": round(seconds, 3),
        "upload_chunks": sum(item.chunks for item in objects),
        "objects": dg.MetadataValue.md("| week | uri | bytes | crc32c |\n|---|---|---|---|\n" + rows),
    }
