"""DL_info.csv reader: official format, round trip, row/column-precise errors."""
import csv

import pytest

from mp3d_mmdet.datasets.dl_info import DL_INFO_COLUMNS, DLInfoRow, read_dl_info, write_dl_info

OFFICIAL_ROW = [
    '000001_01_01_109.png', '1', '1', '1', '109',
    '233.537, 95.0204, 234.742, 106.685, 231.051, 101.101, 237.629, 100.929',
    '226.169, 90.0204, 241.742, 111.685', '11.6286, 6.5817', '0.44339, 0.388381, 0.0556134',
    '3', '0', '103, 115', '0.488281, 0.488281, 5', '512, 512', '-175, 275', 'F', '62', '2'
]


def write_csv(path, rows, header=DL_INFO_COLUMNS):
    with open(path, 'w', newline='') as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def test_reads_an_official_row(tmp_path):
    rows = read_dl_info(write_csv(tmp_path / 'DL_info.csv', [OFFICIAL_ROW]))
    assert len(rows) == 1
    row = rows[0]
    assert row == DLInfoRow(
        csv_row=2, file_name='000001_01_01_109.png', patient_index=1, study_index=1,
        series_id=1, key_slice_index=109,
        measurement_coordinates=(233.537, 95.0204, 234.742, 106.685, 231.051, 101.101, 237.629,
                                 100.929),
        bounding_box=(226.169, 90.0204, 241.742, 111.685), lesion_diameters_pixel=(11.6286,
                                                                                   6.5817),
        normalized_lesion_location=(0.44339, 0.388381, 0.0556134), coarse_lesion_type=3,
        possibly_noisy=False, slice_range=(103, 115), spacing_mm_px=(0.488281, 0.488281, 5.0),
        image_size=(512, 512), dicom_windows=((-175.0, 275.0), ), patient_gender='F',
        patient_age=62.0, train_val_test=2)
    assert row.series_folder == '000001_01_01'


def test_write_then_read_round_trip_and_official_quoting(tmp_path):
    rows = read_dl_info(write_csv(tmp_path / 'a.csv', [OFFICIAL_ROW]))
    write_dl_info(str(tmp_path / 'b.csv'), rows)
    assert read_dl_info(str(tmp_path / 'b.csv')) == rows
    line = (tmp_path / 'b.csv').read_text().splitlines()[1]
    assert line == ('000001_01_01_109.png,1,1,1,109,"233.537, 95.0204, 234.742, 106.685, '
                    '231.051, 101.101, 237.629, 100.929","226.169, 90.0204, 241.742, 111.685",'
                    '"11.6286, 6.5817","0.44339, 0.388381, 0.0556134",3,0,"103, 115",'
                    '"0.488281, 0.488281, 5","512, 512","-175, 275",F,62,2')


def test_empty_age_and_multiple_windows(tmp_path):
    row = list(OFFICIAL_ROW)
    row[14], row[16] = '-175, 275, -1500, 500', ''
    parsed = read_dl_info(write_csv(tmp_path / 'DL_info.csv', [row]))[0]
    assert parsed.patient_age is None
    assert parsed.dicom_windows == ((-175.0, 275.0), (-1500.0, 500.0))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match='annotation file not found'):
        read_dl_info(str(tmp_path / 'nope.csv'))


def test_missing_columns(tmp_path):
    header = [c for c in DL_INFO_COLUMNS if c not in ('Bounding_boxes', 'Train_Val_Test')]
    row = [v for c, v in zip(DL_INFO_COLUMNS, OFFICIAL_ROW) if c in header]
    path = write_csv(tmp_path / 'DL_info.csv', [row], header=header)
    with pytest.raises(ValueError,
                       match=r"missing column\(s\) \['Bounding_boxes', 'Train_Val_Test'\]"):
        read_dl_info(path)


def test_row_with_wrong_field_count(tmp_path):
    bad = OFFICIAL_ROW[:6] + ['226.169', '90.0204, 241.742, 111.685'] + OFFICIAL_ROW[7:]
    path = write_csv(tmp_path / 'DL_info.csv', [OFFICIAL_ROW, bad])
    with pytest.raises(ValueError, match='row 3 has 19 fields, the header has 18'):
        read_dl_info(path)


@pytest.mark.parametrize('column,value,message', [
    ('Bounding_boxes', '226.169, 90.0204, 241.742', 'expected 4 comma-separated numbers, found 3'),
    ('Bounding_boxes', '241.742, 90.0204, 226.169, 111.685', 'expected x1 < x2 and y1 < y2'),
    ('Bounding_boxes', '226.169, 90.0204, 226.169, 111.685', 'expected x1 < x2 and y1 < y2'),
    ('Bounding_boxes', '226.169, 90.0204, 241.742, 90.0204',
     r'expected x1 < x2 and y1 < y2: a box of positive width and height \(sides of at least '
     r'0.01 px between float32 corners'),
    ('Bounding_boxes', '226.1690001, 90.0204, 226.1690002, 111.685',
     r'expected x1 < x2 and y1 < y2: .*got width 0 and height 21.66'),
    ('Measurement_coordinates', '1, 2, x, 4, 5, 6, 7, 8', 'expected comma-separated numbers'),
    ('Patient_index', 'one', 'expected an integer'),
    ('Key_slice_index', '110', 'does not match the slice number 109'),
    ('File_name', '000001_01_01_109.jpg', 'expected <patient>_<study>_<series>_<slice>.png'),
    ('Coarse_lesion_type', '9', 'expected 1..8 or -1'),
    ('Possibly_noisy', '2', 'expected 0 or 1'),
    ('Slice_range', '110, 115', r'expected first <= Key_slice_index \(109\) <= last'),
    ('Spacing_mm_px_', '0.5, 0.5, 0', r'slice interval 0.0 mm is outside the plausible CT'),
    ('Spacing_mm_px_', '0.5, 0.5, 1e-06', r'slice interval 1e-06 mm is outside the plausible'),
    ('Spacing_mm_px_', '0.5, 0.5, 1e9', r'slice interval 1000000000.0 mm is outside'),
    ('Spacing_mm_px_', '0.0001, 0.5, 2.5', r'pixel spacing \(x\) 0.0001 mm is outside'),
    ('Patient_index', '2', r"does not match File_name '000001_01_01_109.png'"),
    ('Study_index', '2', r"does not match File_name '000001_01_01_109.png'"),
    ('Series_ID', '3', r"does not match File_name '000001_01_01_109.png'"),
    ('Image_size', '512.5, 512', 'expected two positive integers'),
    ('DICOM_windows', '-175, 275, 30', 'expected a non-empty multiple of 2 .* found 3'),
    ('Patient_age', 'old', 'expected a number or an empty field'),
    ('Train_Val_Test', '4', r'expected 1 \(train\), 2 \(val\) or 3 \(test\)'),
])
def test_malformed_field_names_row_and_column(tmp_path, column, value, message):
    other_lesion = list(OFFICIAL_ROW)
    other_lesion[DL_INFO_COLUMNS.index('Bounding_boxes')] = '10, 10, 20, 20'
    bad = list(OFFICIAL_ROW)
    bad[DL_INFO_COLUMNS.index(column)] = value
    path = write_csv(tmp_path / 'DL_info.csv', [OFFICIAL_ROW, other_lesion, bad])
    with pytest.raises(ValueError, match=rf"DL_info.csv: row 4, column '{column}': {message}"):
        read_dl_info(path)


def test_duplicate_row_is_named_with_its_twin(tmp_path):
    other = list(OFFICIAL_ROW)
    other[DL_INFO_COLUMNS.index('Bounding_boxes')] = '10, 10, 20, 20'
    path = write_csv(tmp_path / 'DL_info.csv', [OFFICIAL_ROW, other, list(OFFICIAL_ROW)])
    with pytest.raises(ValueError, match=r"DL_info.csv: row 4 repeats row 2 \(the same box on "
                       r"key slice 000001_01_01/109.png\); each lesion must be listed once"):
        read_dl_info(path)


def test_non_utf8_file_names_the_row(tmp_path):
    path = write_csv(tmp_path / 'DL_info.csv', [OFFICIAL_ROW])
    lines = (tmp_path / 'DL_info.csv').read_bytes().split(b'\n')
    lines[1] = lines[1].replace(b'F,62', b'\xe9,62')  # latin-1 e-acute
    (tmp_path / 'DL_info.csv').write_bytes(b'\n'.join(lines))
    with pytest.raises(ValueError, match=r'DL_info.csv: row 2 is not UTF-8 text \(byte 0xe9 '
                       r'at offset \d+\)') as error:
        read_dl_info(path)
    assert '\n' not in str(error.value)


def test_byte_order_mark_is_accepted(tmp_path):
    path = write_csv(tmp_path / 'DL_info.csv', [OFFICIAL_ROW])
    data = (tmp_path / 'DL_info.csv').read_bytes()
    (tmp_path / 'DL_info.csv').write_bytes(b'\xef\xbb\xbf' + data)
    assert read_dl_info(path)[0].file_name == '000001_01_01_109.png'
