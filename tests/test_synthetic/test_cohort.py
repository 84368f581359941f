"""The cohort: series mix, splits by patient, the special cases every set holds."""


def test_series_mix_and_special_cases(generated):
    _, summary, rows = generated
    assert {r.spacing_mm_px[2] for r in rows} == {1.0, 2.5, 5.0}
    assert summary['series_per_slice_interval'][1.0] >= 1
    assert {r.image_size for r in rows} == {(96, 96), (144, 144)}
    assert {r.series_folder for r in rows if r.image_size == (144, 144)} == {
        summary['large_series']}
    assert summary['num_noisy_rows'] == sum(r.possibly_noisy for r in rows) >= 1
    assert len(summary['multi_lesion_key_slices']) >= 1
    for code, name in ((1, 'train'), (2, 'val'), (3, 'test')):
        split_rows = [r for r in rows if r.train_val_test == code]
        assert summary['splits'][name]['lesions'] == len(split_rows) > 0
        assert summary['splits'][name]['patients'] == len({r.patient_index for r in split_rows})
    # one split per patient; lesion types unknown in train as in the release
    for patient in {r.patient_index for r in rows}:
        assert len({r.train_val_test for r in rows if r.patient_index == patient}) == 1
    assert {r.coarse_lesion_type for r in rows if r.train_val_test == 1} == {-1}
    assert all(1 <= r.coarse_lesion_type <= 8 for r in rows if r.train_val_test != 1)
