"""tools/benchmark/gpu_check.sh --dry-run (every step that needs no CUDA) and the summary."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
sys.path.insert(0, osp.join(REPO, 'tools', 'benchmark'))
import gpu_check  # noqa: E402


def write_training_log(folder, rows):
    os.makedirs(folder / '20260101_000000' / 'vis_data')
    with open(folder / '20260101_000000' / 'vis_data' / 'scalars.json', 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in rows)


def test_training_figures_skip_the_first_interval_and_take_the_peak(tmp_path):
    rows = [dict(loss=2.0, time=1.5, data_time=0.2, memory=9000, iter=5),
            dict(loss=1.0, time=0.30, data_time=0.02, memory=7000, iter=10),
            dict(loss=0.8, time=0.20, data_time=0.01, memory=7100, iter=15),
            dict(loss=0.5, time=0.25, data_time=0.03, memory=7200, iter=20),
            {'froc/sens@0.5': 0.25, 'froc/mAP@0.5': 0.5, 'step': 20}]
    write_training_log(tmp_path, rows)
    figures = gpu_check.training_figures(str(tmp_path))
    assert figures['iterations'] == 20 and figures['logged_intervals'] == 4
    assert figures['step_time_s'] == 0.25  # median of 0.30, 0.20, 0.25
    assert figures['data_time_s'] == 0.02
    assert figures['peak_memory_mib'] == 9000
    assert (figures['first_loss'], figures['last_loss']) == (2.0, 0.5)
    assert figures['validation'] == {'froc/sens@0.5': 0.25, 'froc/mAP@0.5': 0.5}


def test_mp3d_vs_mr3d_line_states_the_targets():
    rows = dict(mp3d=dict(best_ms=35.0, peak_mib=5000.0),
                mr3d=dict(best_ms=50.0, peak_mib=4000.0))
    assert gpu_check.mp3d_vs_mr3d(dict(mode='train', rows=rows)) == (
        'MP3D / MR3D: time 0.70x (target <= 0.7x), peak memory 1.25x (target <= 1x)')
    assert gpu_check.mp3d_vs_mr3d(dict(mode='eval', rows=rows)) is None
    assert gpu_check.mp3d_vs_mr3d(dict(mode='train', rows={'mp3d': rows['mp3d']})) is None


def test_training_figures_name_the_missing_log(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        gpu_check.training_figures(str(tmp_path))
    write_training_log(tmp_path, [{'froc/sens@0.5': 0.1}])
    with pytest.raises(ValueError, match='no training iteration'):
        gpu_check.training_figures(str(tmp_path))


def test_dry_run_runs_every_step_and_writes_the_results(tmp_path):
    out = tmp_path / 'results'
    env = dict(os.environ, MP3D_GPU_CHECK_VARIANTS='with-cp')
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'benchmark', 'gpu_check.sh'),
                           '--dry-run', '--out', str(out)], cwd=str(tmp_path), env=env,
                          capture_output=True, encoding='utf-8', errors='replace')
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert sorted(os.listdir(out)) == ['backbones.json', 'env.json', 'gpu_check.json',
                                       'variants.json', 'work']
    summary = json.loads((out / 'gpu_check.json').read_text())
    assert summary['env']['gpu'] is None and summary['env']['mmcv_cuda_ops'] is False
    assert summary['config'] == 'gpu_check_mp3d_fpn_deeplesion_2x.py'
    train = summary['training']
    assert train['iterations'] == 2 and train['step_time_s'] > 0
    assert train['peak_memory_mib'] is None  # mmengine logs memory on CUDA only
    assert set(train['validation']) >= {'froc/sens@0.5', 'froc/mAP@0.5'}
    assert set(summary['test']) >= {'froc/sens@0.5', 'froc/sens@16', 'froc/mAP@0.5'}
    tables = [(t['variant'], t['mode'], sorted(t['rows']))
              for report in summary['backbones'] for t in report['tables']]
    assert tables == [('default', 'eval', ['3dce', 'mp3d', 'mr3d', 'resnet50']),
                      ('with-cp', 'eval', ['mp3d', 'mr3d'])]
    assert '| step time, median' in proc.stdout and 'gpu_check.sh: done' in proc.stdout
    # the training ran the paper config's own model and AMP wrapper, made CPU-safe
    assert 'AmpOptimWrapper -> OptimWrapper' in proc.stdout + proc.stderr


def test_unknown_argument_is_refused():
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'benchmark', 'gpu_check.sh'),
                           '--gpu'], capture_output=True, encoding='utf-8')
    assert proc.returncode == 2
    assert proc.stderr.strip() == 'gpu_check.sh: unknown argument --gpu (see --help)'


def test_a_work_folder_of_other_files_is_refused_and_kept(tmp_path):
    work = tmp_path / 'results' / 'work'
    work.mkdir(parents=True)
    (work / 'mine.txt').write_text('keep me')
    proc = subprocess.run(['bash', osp.join(REPO, 'tools', 'benchmark', 'gpu_check.sh'),
                           '--dry-run', '--out', str(tmp_path / 'results')],
                          capture_output=True, encoding='utf-8', errors='replace')
    assert proc.returncode == 1
    assert proc.stderr.strip() == (f'gpu_check.sh: {work} is not empty and not a gpu_check '
                                   'work folder (no .mp3d_gpu_check): choose another --out or '
                                   'MP3D_GPU_CHECK_WORK')
    assert (work / 'mine.txt').read_text() == 'keep me'
