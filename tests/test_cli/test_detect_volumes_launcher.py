"""mp3d-detect-volumes --precision and --launcher: fp16 refused on the CPU, bf16 where the CPU
has no native bfloat16 (emulated, with a warning), the precision used recorded in the results
file's header (and a resume with another one refused), unusable launchers in one line."""
import json

import pytest
import torch.multiprocessing
from helpers.volume_fixtures import write_small_volume, write_tiny_model

from mp3d_mmdet.cli import detect_volumes
from mp3d_mmdet.volume import RESULTS_FILE_NAME
from mp3d_mmdet.volume.inference import detector as detector_module
from mp3d_mmdet.volume.inference import precision as precision_module

PROG = 'mp3d-detect-volumes'
EMULATED = (f'{PROG}: warning: bf16 on a CPU without AVX512_BF16 or AMX: emulated, slower '
            'than fp32 (--precision auto picks fp32 here)')
LAUNCH_ENV = ('RANK', 'LOCAL_RANK', 'WORLD_SIZE', 'LOCAL_WORLD_SIZE', 'MASTER_ADDR',
              'MASTER_PORT', 'SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_NODELIST',
              'OMPI_COMM_WORLD_LOCAL_RANK', 'OMPI_COMM_WORLD_RANK', 'OMPI_COMM_WORLD_SIZE')


@pytest.fixture(scope='module')
def base_args(tmp_path_factory):
    root = tmp_path_factory.mktemp('precision')
    cfg, ckpt = write_tiny_model(str(root))
    write_small_volume(str(root / 'ct.nii.gz'))
    return ['--folder', str(root), '--config', cfg, '--checkpoint', ckpt, '--no-progress',
            '--score-thr', '0.9']


def _run(capsys, args):
    code = detect_volumes.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _cpu_bf16(monkeypatch, flags):
    """The CPU's native bfloat16 instruction sets, as the precision rules and the detector
    read them."""
    monkeypatch.setattr(precision_module, 'cpu_bf16_flags', lambda: flags)
    monkeypatch.setattr(detector_module, 'cpu_bf16_flags', lambda: flags)


def _header_precision(out):
    with open(out / RESULTS_FILE_NAME, encoding='utf-8') as handle:
        return json.loads(handle.readline())['header']['settings']['precision']


def test_fp16_on_the_cpu_is_refused_in_one_line(capsys, tmp_path, base_args):
    code, _, stderr = _run(capsys, base_args + ['--out', str(tmp_path / 'out'), '--precision',
                                                'fp16'])
    assert code == 1
    assert stderr == (f'{PROG}: error: --precision fp16 needs a CUDA device (on the CPU use '
                      'bf16, or auto)\n')
    assert not (tmp_path / 'out' / RESULTS_FILE_NAME).exists()


def test_the_precision_used_is_recorded_and_bf16_is_emulated_without_cpu_support(
        capsys, tmp_path, base_args, monkeypatch):
    _cpu_bf16(monkeypatch, ())
    code, stdout, stderr = _run(capsys, base_args + ['--out', str(tmp_path / 'bf16'),
                                                     '--precision', 'bf16'])
    assert code == 0, stderr
    assert stderr.splitlines() == [EMULATED]
    assert '1 volume(s) detected' in stdout
    assert _header_precision(tmp_path / 'bf16') == 'bf16'

    code, _, stderr = _run(capsys, base_args + ['--out', str(tmp_path / 'auto')])
    assert code == 0 and stderr == '', stderr
    assert _header_precision(tmp_path / 'auto') == 'fp32'
    # resuming the bf16 file with what auto picks here: other settings
    code, _, stderr = _run(capsys, base_args + ['--out', str(tmp_path / 'bf16')])
    assert code == 1
    assert stderr.count('\n') == 1 and stderr.startswith(f'{PROG}: error: '), stderr
    assert "made with other settings (precision: 'bf16' there, 'fp32' now)" in stderr

    _cpu_bf16(monkeypatch, ('avx512_bf16', ))
    code, _, stderr = _run(capsys, base_args + ['--out', str(tmp_path / 'native')])
    assert code == 0 and stderr == '', stderr
    assert _header_precision(tmp_path / 'native') == 'bf16'


def test_unknown_launcher_is_a_usage_error(capsys, tmp_path, base_args):
    with pytest.raises(SystemExit) as exit_info:
        detect_volumes.main(base_args + ['--out', str(tmp_path / 'out'), '--launcher',
                                         'torchrun'])
    assert exit_info.value.code == 2
    assert "argument --launcher: invalid choice: 'torchrun' (choose from 'none', 'pytorch', " \
        "'slurm', 'mpi')" in capsys.readouterr().err


@pytest.mark.parametrize('launcher, variable', [('pytorch', 'RANK'),
                                                ('slurm', 'SLURM_PROCID'),
                                                ('mpi', 'OMPI_COMM_WORLD_LOCAL_RANK')])
def test_a_launcher_without_its_environment_is_one_line(capsys, tmp_path, base_args,
                                                        monkeypatch, launcher, variable):
    for name in LAUNCH_ENV:
        monkeypatch.delenv(name, raising=False)
    start_method = torch.multiprocessing.get_start_method(allow_none=True)
    try:  # mmengine's init_dist sets the start method of multiprocessing
        code, _, stderr = _run(capsys, base_args + ['--out', str(tmp_path / 'out'),
                                                    '--launcher', launcher])
    finally:
        torch.multiprocessing.set_start_method(start_method, force=True)
    assert code == 1
    assert stderr == (f'{PROG}: error: --launcher {launcher}: environment variable {variable} '
                      'is not set (start the command with torchrun, srun or mpirun, or use '
                      '--launcher none)\n')
    assert not (tmp_path / 'out').exists()
