"""The station key and the station dimension across both eras, on crafted tables and MTA's real files."""

import gzip
import io

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from mta_assets.mta.parse import parse_week
from mta_assets.mta.stations import StationKey, load_station_key, parse_station_key, station_dimension
from mta_assets_tests.samples import require_samples

KEY_CSV = b"Remote,Booth,Station,Line Name,Division\nR051,A002,LEXINGTON AVE,456NQR,BMT\nR001,A060,WHITEHALL ST,R1,BMT\n" \
    b"R001,R101S,SOUTH FERRY,R1,IRT\nR022,A022,34 ST-HERALD SQ,BDFMNQR,BMT\nR022,A023,34 ST-HERALD SQ,BDFMNQR,BMT\n"


def observed(*rows) -> pa.Table:
    """(unit, ca, station, linename, division) rows as a week's readings would hold them."""
    names = ["unit", "ca", "station", "linename", "division"]
    return pa.table({name: pa.array([row[i] for row in rows], pa.string()) for i, name in enumerate(names)})


def by_pair(table: pa.Table) -> dict:
    return {(r["unit"], r["ca"]): (r["station"], r["linename"], r["division"], r["source"]) for r in table.to_pylist()}


def test_the_keys_name_wins_over_the_files_so_a_station_keeps_one_name_across_eras():
    key = parse_station_key(KEY_CSV, "key.csv")
    eleven = observed(("R051", "A002", "59 ST", "NQR456W", "BMT"), ("R051", "A002", "59 ST", "NQR456W", "BMT"))
    wide = observed(("R051", "A002", None, None, None))
    assert by_pair(station_dimension(eleven, key)) == by_pair(station_dimension(wide, key)) == {
        ("R051", "A002"): ("LEXINGTON AVE", "456NQR", "BMT", "key")
    }
    assert station_dimension(eleven, key).column("station_in_file").to_pylist() == ["59 ST"]


def test_pairs_the_key_does_not_know_fall_back_to_the_file_then_to_the_unit_then_stay_null():
    key = parse_station_key(KEY_CSV, "key.csv")
    table = station_dimension(
        observed(
            ("R570", "N700", "72 ST-2 AVE", "Q", "IND"),  # opened after the key was published
            ("R022", "A099", None, None, None),  # wide file, unknown booth of a unit with one name
            ("R001", "R101", None, None, None),  # wide file, unit with two stations: no guess
            ("R999", "Z999", None, None, None),
        ),
        key,
    )
    assert by_pair(table) == {
        ("R570", "N700"): ("72 ST-2 AVE", "Q", "IND", "file"),
        ("R022", "A099"): ("34 ST-HERALD SQ", "BDFMNQR", "BMT", "key_unit"),
        ("R001", "R101"): (None, None, None, None),
        ("R999", "Z999"): (None, None, None, None),
    }


def test_without_a_key_the_eleven_column_names_are_kept():
    table = station_dimension(observed(("R051", "A002", "59 ST", "NQR456W", "BMT")), None)
    assert by_pair(table) == {("R051", "A002"): ("59 ST", "NQR456W", "BMT", "file")}


def test_a_key_without_lines_takes_them_from_the_file():
    key = parse_station_key(b"unit,control_area,station\nR051,A002,LEXINGTON AVE\n", "old.csv")
    table = station_dimension(observed(("R051", "A002", "59 ST", "NQR456W", "BMT")), key)
    assert by_pair(table) == {("R051", "A002"): ("LEXINGTON AVE", "NQR456W", "BMT", "key")}


def test_key_files_that_are_not_keys_are_refused_with_their_name():
    with pytest.raises(ValueError, match="station key bad.csv: no unit, ca, station column"):
        parse_station_key(b"a,b\n1,2\n", "bad.csv")
    with pytest.raises(ValueError, match="station key empty.csv: the file is empty"):
        parse_station_key(b"", "empty.csv")
    with pytest.raises(ValueError, match="no \\(unit, booth, station\\) rows"):
        parse_station_key(b"Remote,Booth,Station\n", "header-only.csv")


def test_the_real_keys_load():
    folder = require_samples() / "reference"
    mango = load_station_key(folder / "Remote-Booth-Station_mango314.csv")
    jehiah = load_station_key(folder / "Remote-Booth-Station_jehiah_2010.csv")
    assert isinstance(mango, StationKey) and len(mango) > 700 and len(jehiah) > 700
    assert mango.by_unit()["R022"][0] == "34 ST-HERALD SQ"  # three booths, one name
    assert "R001" not in mango.by_unit()  # WHITEHALL ST and SOUTH FERRY share the unit
    assert "R051" not in mango.by_unit()  # 59 ST (IRT booths) and LEXINGTON AVE (BMT booth)


@pytest.mark.parametrize(
    ("name", "week"),
    [("sample_data_wdlindmeier.txt", "2013-01-26"), ("turnstile_110528_YuliyaKar.txt", "2011-05-21")],
)
def test_wide_layout_files_get_their_station_names_from_the_key(name, week):
    folder = require_samples()
    key = load_station_key(folder / "reference" / "Remote-Booth-Station_mango314.csv")
    parsed = parse_week((folder / "partial-weeks" / name).read_bytes(), week, name)
    assert parsed.layout == "wide"
    assert pc.all(pc.is_null(parsed.table["station"])).as_py()  # the file itself names no station
    table = station_dimension(parsed.table, key)
    assert table.num_rows > 0
    assert table.column("station").null_count == 0
    assert set(table.column("source").to_pylist()) == {"key"}


def test_every_unit_of_the_real_full_weeks_has_a_station():
    folder = require_samples()
    key = load_station_key(folder / "reference" / "Remote-Booth-Station_mango314.csv")
    # One week of each header variant (C/A and CA); every full week was checked the same way.
    for path in [folder / "full-weeks" / "turnstile_230603.csv.gz", folder / "full-weeks" / "240217.csv.gz"]:
        import pyarrow.csv as pacsv

        with gzip.open(path, "rb") as handle:
            frame = pacsv.read_csv(io.BytesIO(handle.read()))
        ca = "C/A" if "C/A" in frame.column_names else "CA"
        readings = pa.table(
            {
                "unit": frame["UNIT"], "ca": frame[ca], "station": frame["STATION"],
                "linename": frame["LINENAME"], "division": frame["DIVISION"],
            }
        )
        table = station_dimension(readings, key)
        assert table.column("station").null_count == 0, path.name
        assert set(table.column("unit").to_pylist()) == set(readings.column("unit").to_pylist()), path.name
