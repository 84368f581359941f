"""``import mp3d_mmdet`` (or ``custom_imports``) registers every component in the right registry."""
import subprocess
import sys
import textwrap

EXPECTED = {
    'mmdet.registry.MODELS': ['MP3DResNet', 'MR3DResNet', 'ResNet3DCE', 'GroupTransform',
                              'CenterSliceTransform'],
    'mmdet.registry.DATASETS': ['DeepLesionDataset'],
    'mmdet.registry.TRANSFORMS': ['LoadCTSlices', 'SliceWiseResize', 'MultiChannelPad',
                                  'RGBToSlices'],
    'mmdet.registry.METRICS': ['FROCMetric'],
    'mmdet.registry.HOOKS': ['CrashSafeCheckpointHook', 'EvaluationProgressHook'],
    'mmengine.registry.RUNNERS': ['DeviceAwareRunner'],
}


def _run(code: str) -> None:
    proc = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True,
                          encoding='utf-8', errors='replace', timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_registers_everything_in_a_fresh_interpreter():
    # Before the import none of the names is known; after it each is, in its own registry.
    _run(f"""
        import importlib
        expected = {EXPECTED!r}
        registries = {{}}
        for path in expected:
            module, name = path.rsplit('.', 1)
            registries[path] = getattr(importlib.import_module(module), name)
        for path, names in expected.items():
            for name in names:
                assert registries[path].get(name) is None, (path, name, 'before import')
        import mp3d_mmdet  # noqa: F401
        for path, names in expected.items():
            for name in names:
                obj = registries[path].get(name)
                assert obj is not None and obj.__module__.startswith('mp3d_mmdet.'), (path, name)
    """)


def test_custom_imports_is_all_another_project_needs(tmp_path):
    cfg = tmp_path / 'other_project.py'
    cfg.write_text("custom_imports = dict(imports=['mp3d_mmdet'], allow_failed_imports=False)\n"
                   "model = dict(type='MP3DResNet', depth=50, num_slices=5)\n")
    _run(f"""
        from mmengine.config import Config
        from mmdet.registry import MODELS
        cfg = Config.fromfile({str(cfg)!r})
        backbone = MODELS.build(cfg.model)
        assert type(backbone).__name__ == 'MP3DResNet' and backbone.num_slices == 5
    """)
