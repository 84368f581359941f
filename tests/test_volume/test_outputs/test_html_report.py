"""The self-contained HTML report and batch index, checked as files and in headless Chromium.

The browser is driven through the Chrome DevTools protocol over ``--remote-debugging-pipe``
(JSON messages on file descriptors 3 and 4; Python's standard library only): no WebDriver,
no chromedriver version to match, no extra Python package. Clicks and keys are real input
events (``Input.dispatchMouseEvent`` / ``dispatchKeyEvent``), pictures are screenshots of
the composited page (``Page.captureScreenshot``). The browser tests are skipped when no
Chromium is installed (``apt-get install chromium``; ``MP3D_CHROMIUM`` names another binary).
"""
import base64
import dataclasses
import json
import os
import os.path as osp
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Dict, Optional

import cv2
import numpy as np
import pytest
import SimpleITK as sitk

from helpers.volume_fixtures import PlantedLesion, make_sitk_image, phantom_volume
from mp3d_mmdet.volume import (BOX_RGB, DISPLAY_CODE_KNOTS, JPEG_QUALITIES, SELECTED_RGB,
                               SLICE_BUDGET, WINDOW_PRESETS, HtmlIndexEntry, SliceDetections,
                               VolumeDetectionResult, candidate_regions, display_code_hu,
                               encode_report_slices, hu_to_display_code, input_window,
                               link_slice_detections, measure_lesion_candidates, read_ct_volume,
                               render_html_report, write_html_index, write_html_report)

NUM_SLICES, HEIGHT, WIDTH = 14, 48, 64
SPACING = (0.8, 0.8, 2.5)
# candidate id -> {slice: box}; ids ranked by score (1 best)
TRACKS = {
    1: ({4: [10, 12, 30, 28], 5: [9, 11, 31, 29], 6: [10, 12, 30, 28]}, [0.7, 0.95, 0.8]),
    2: ({8: [40, 6, 56, 18], 9: [40, 6, 56, 18], 10: [41, 7, 55, 17], 11: [42, 8, 54, 16]},
        [0.6, 0.8, 0.7, 0.5]),
    3: ({2: [44, 30, 52, 40]}, [0.55]),
}


@pytest.fixture(scope='module')
def case(tmp_path_factory):
    """A small phantom read from NIfTI, three candidates linked from hand-made boxes, their
    regions, and the report written from them."""
    folder = tmp_path_factory.mktemp('html_report')
    hu = phantom_volume((WIDTH, HEIGHT, NUM_SLICES), SPACING,
                        [PlantedLesion((16, 16, 12.5), (8, 6, 5))])
    path = str(folder / 'phantom.nii.gz')
    sitk.WriteImage(make_sitk_image(hu, SPACING, (-20.0, 30.0, -100.0)), path)
    volume = read_ct_volume(path)
    boxes = [np.zeros((0, 4), np.float32) for _ in range(NUM_SLICES)]
    scores = [np.zeros(0, np.float32) for _ in range(NUM_SLICES)]
    for slice_boxes, slice_scores in TRACKS.values():
        for (z, box), score in zip(sorted(slice_boxes.items()), slice_scores):
            boxes[z] = np.concatenate([boxes[z], np.array([box], np.float32)])
            scores[z] = np.concatenate([scores[z], np.array([score], np.float32)])
    detections = SliceDetections(boxes, scores, list(range(NUM_SLICES)), 0.5, 'rule',
                                 (WIDTH, HEIGHT), (0.8, 0.8), 1,
                                 dict(assemble=0.1, pipeline=0.2, network=1.5, postprocess=0.01))
    candidates = measure_lesion_candidates(link_slice_detections(boxes, scores, iou_thr=0.3),
                                           volume.geometry, volume.original_geometry)
    assert [c.best_slice for c in candidates] == [5, 9, 2]
    result = VolumeDetectionResult(
        volume=volume, detections=detections, candidates=candidates,
        linking=dict(iou_thr=0.3, max_gap=1, min_slices=1),
        model=dict(config='configs/cfg.py', checkpoint='ckpt/epoch_24.pth', device='cpu',
                   score_thr=0.5, cfg_options={'a': 1}),
        warnings=['phantom.nii.gz: a <test> warning & more'],
        timings=dict(read=0.05, **detections.timings, link=0.001))
    regions = candidate_regions(result)
    assert [r.candidate_id for r in regions] == [1, 2, 3]
    report = str(folder / 'report.html')
    write_html_report(result, report, title='Phantom <report>')  # regions: all candidates
    return result, regions, report


def _payload(text: str, element_id: str):
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>',
                      text, re.S)
    assert match, element_id
    return json.loads(match.group(1))


# ---------------------------------------------------------------- file checks (no browser)


def test_report_file_contents(case):
    result, regions, report = case
    assert os.listdir(osp.dirname(report)).count('report.html') == 1
    assert not [n for n in os.listdir(osp.dirname(report)) if n.endswith('.partial')]
    with open(report, encoding='utf-8') as handle:
        text = handle.read()
    assert text.startswith('<!DOCTYPE html>')
    assert '<title>Phantom &lt;report&gt;</title>' in text
    data = _payload(text, 'report-data')
    assert (data['width'], data['height']) == (WIDTH, HEIGHT)
    assert data['spacing'] == pytest.approx(SPACING)
    assert data['z_mm'] == pytest.approx([-100.0 + 2.5 * z for z in range(NUM_SLICES)])
    assert [c['id'] for c in data['candidates']] == [1, 2, 3]
    assert data['candidates'][1]['boxes'] == {str(z): [float(v) for v in b]
                                              for z, b in TRACKS[2][0].items()}
    assert data['candidates'][0]['score'] == 0.95 and data['candidates'][0]['best'] == 5
    slices = _payload(text, 'slice-data')
    assert len(slices) == NUM_SLICES
    picture = cv2.imdecode(np.frombuffer(base64.b64decode(slices[6]), np.uint8),
                           cv2.IMREAD_UNCHANGED)
    assert picture.shape == (HEIGHT, WIDTH)  # grey, native size (under 512 px)
    tissue = int(hu_to_display_code(40.0))  # HU coded, not windowed: 40 HU -> 136
    assert tissue == 136 and picture[0, 0] <= 4  # air (-1000 HU -> code 2)
    assert abs(np.median(picture[HEIGHT // 2, 36:56]) - tissue) <= 2  # body, no lesion
    # metadata, escaped
    for expected in ('configs/cfg.py', 'ckpt/epoch_24.pth', 'phantom.nii.gz',
                     'a &lt;test&gt; warning &amp; more', 'linking iou_thr', 'network',
                     '1.500 s', 'nifti', 'LPS', '{&quot;a&quot;: 1}'):
        assert expected in text, expected
    assert text.count('<tr tabindex="0" data-candidate=') == 3


def test_regions_given(case, tmp_path):
    result, _, _ = case
    path = str(tmp_path / 'report.html')
    write_html_report(result, path, candidate_regions(result, score_thr=0.7))
    text = open(path, encoding='utf-8').read()
    assert [c['id'] for c in _payload(text, 'report-data')['candidates']] == [1, 2]
    assert '<title>Lesion candidates: phantom.nii.gz</title>' in text
    assert '<th scope="row">candidates linked</th><td>3</td>' in text
    assert '<th scope="row">candidates shown</th><td>2</td>' in text


def test_no_external_references(case, tmp_path):
    _, _, report = case
    index = str(tmp_path / 'index.html')
    write_html_index([('a b', osp.join(str(tmp_path), 'a b', 'report.html'), 2, 0.9)], index)
    for path in (report, index):
        with open(path, encoding='utf-8') as handle:
            text = handle.read()
        lowered = text.lower()
        for pattern in ('http://', 'https://', 'src="//', "src='//", 'href="//', '@import',
                        'url(', '<link', '<iframe', 'fetch(', 'xmlhttprequest'):
            assert pattern not in lowered, (path, pattern)
        for attribute, value in re.findall(r'\b(src|href)\s*=\s*"([^"]*)"', text):
            assert not re.match(r'^[a-z][a-z0-9+.-]*:|^/', value) or value.startswith('data:'), \
                value
    assert '<a href="a%20b/report.html">a b</a>' in open(index, encoding='utf-8').read()


def _decoded(image: str) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(base64.b64decode(image), np.uint8), cv2.IMREAD_UNCHANGED)


def test_display_code_precision():
    """HU -> code -> HU is within half a code step: 2.5 HU steps in [-160, 240], 15.4 HU
    below, 32.3 HU above; clipped outside [-1024, 1500]; the map is increasing."""
    hu = np.arange(-1024.0, 1500.5, 0.5)
    back = display_code_hu()[hu_to_display_code(hu)]
    error = np.abs(back - hu)
    soft = (hu >= -160) & (hu <= 240)
    assert error[soft].max() <= 2.5 / 2 + 1e-9
    assert error[hu < -160].max() <= 864 / 56 / 2 + 1e-9
    assert error[hu > 240].max() <= 1260 / 39 / 2 + 1e-9
    assert np.all(np.diff(display_code_hu()) > 0)
    assert [int(hu_to_display_code(h)) for h, _ in DISPLAY_CODE_KNOTS] == [0, 56, 216, 255]
    assert hu_to_display_code(np.array([-3000.0, 4000.0])).tolist() == [0, 255]


def test_slice_encoding_size_rule():
    hu = np.full((2, 300, 600), 40, np.float32)
    hu[:, :, :300] = -1000
    encoded = encode_report_slices(hu)
    picture = _decoded(encoded.images[1])
    assert picture.shape == (256, 512) and encoded.size == (512, 256)  # shrunk, aspect kept
    assert picture[:, :250].max() <= 4 and abs(int(np.median(picture[:, 260:])) - 136) <= 2
    assert encoded.quality == JPEG_QUALITIES[0]  # flat slices: far under the budget
    with pytest.raises(ValueError, match='Z, Y, X'):
        encode_report_slices(hu[0])


def test_quality_follows_the_budget():
    """Noisy slices over the budget get a lower quality, chosen so that they fit it."""
    rng = np.random.default_rng(0)
    hu = (40 + 60 * rng.standard_normal((4, 128, 128))).astype(np.float32)
    best = encode_report_slices(hu, budget=None)
    assert best.quality == JPEG_QUALITIES[0]
    budget = best.num_chars // 4 // 2
    fitted = encode_report_slices(hu, budget=budget)
    assert fitted.quality < best.quality and fitted.num_chars <= budget * 4
    higher = JPEG_QUALITIES[JPEG_QUALITIES.index(fitted.quality) - 1]
    assert encode_report_slices(hu, qualities=[higher], budget=None).num_chars > budget * 4
    floor = encode_report_slices(hu, qualities=[40], budget=1)  # the last quality: kept
    assert floor.quality == 40 and floor.num_chars > 4


def _with_metadata(result, **metadata):
    return dataclasses.replace(result, volume=dataclasses.replace(result.volume,
                                                                  metadata=metadata))


def test_identity_and_windows(case):
    """Patient and study identity and the input's window from the metadata; a file without
    them says so, and its 'input' window is disabled."""
    result, regions, report = case
    text = open(report, encoding='utf-8').read()
    assert 'no patient or study identity in the input (nifti)' in text
    assert '<option value="input" disabled>input: none</option>' in text
    windows = _payload(text, 'report-data')['windows']
    assert windows == {k: list(v) for k, v in WINDOW_PRESETS.items()}
    assert windows['soft tissue'] == [40.0, 400.0]
    dicom = _with_metadata(result, PatientName='Doe^Jane^M', PatientID='P<42>',
                           StudyDate='20240131', StudyDescription='CT chest', Modality='CT',
                           SeriesDescription='Axial 1.25', WindowCenter='-600',
                           WindowWidth='1500')
    text = render_html_report(dicom, regions)
    identity = re.search(r'<p id="identity">(.*?)</p>', text).group(1)
    assert re.sub('<[^>]+>', '', identity) == (
        'patient: Doe, Jane M &middot; ID: P&lt;42&gt; &middot; study date: 2024-01-31 '
        '&middot; study: CT chest &middot; series: Axial 1.25 &middot; modality: CT')
    assert '<option value="input">input (W 1500 / L -600)</option>' in text
    assert _payload(text, 'report-data')['windows']['input'] == [-600.0, 1500.0]
    assert input_window(dict(WindowCenter='40', WindowWidth='0')) is None
    assert input_window(dict(WindowCenter='x', WindowWidth='400')) is None


def test_written_whole_or_not_at_all(case, tmp_path):
    result, regions, _ = case
    path = tmp_path / 'report.html'
    path.write_text('previous')
    with pytest.raises(AttributeError):
        write_html_report(result, str(path), regions + ['not a region'])
    assert path.read_text() == 'previous' and os.listdir(tmp_path) == ['report.html']


def test_index_file(tmp_path):
    index = str(tmp_path / 'index.html')
    write_html_index([HtmlIndexEntry('vol<1>', 'vol1/report.html', 3, 0.91),
                      ('vol2', None, None, None, 'failed: unreadable'),
                      ('vol3', 'vol3/report.html', 0, float('nan'))], index, title='Batch')
    text = open(index, encoding='utf-8').read()
    assert '<a href="vol1/report.html">vol&lt;1&gt;</a>' in text
    assert '<td data-value="vol2">vol2</td>' in text and 'failed: unreadable' in text
    assert '<td data-value="">&ndash;</td>' in text  # no score: sorts last
    assert '3 volumes, 3 candidates' in text


# ---------------------------------------------------------------- headless Chromium


def _chromium() -> Optional[str]:
    for candidate in (os.environ.get('MP3D_CHROMIUM'), '/usr/lib/chromium/chromium'):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    for name in ('chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable'):
        found = shutil.which(name)
        if found:
            return found
    return None


class DevToolsPage:
    """One headless Chromium page driven over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, width: int = 1400, height: int = 1000):
        self.profile = tempfile.mkdtemp(prefix='mp3d-chromium-')
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def child_fds():
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)
            os.set_inheritable(3, True)
            os.set_inheritable(4, True)

        self.process = subprocess.Popen(
            [binary, '--headless=new', '--no-sandbox', '--disable-gpu',
             '--disable-dev-shm-usage', '--force-color-profile=srgb', '--hide-scrollbars',
             '--no-first-run', '--no-default-browser-check', '--disable-extensions',
             '--disable-background-networking', '--disable-sync', '--mute-audio',
             f'--window-size={width},{height}', f'--user-data-dir={self.profile}',
             '--remote-debugging-pipe', 'about:blank'],
            preexec_fn=child_fds, close_fds=False, start_new_session=True,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b''
        self._id = 0
        self.session = None
        target = [t for t in self.call('Target.getTargets')['targetInfos']
                  if t['type'] == 'page'][0]
        self.session = self.call('Target.attachToTarget', targetId=target['targetId'],
                                 flatten=True)['sessionId']
        self.call('Emulation.setDeviceMetricsOverride', width=width, height=height,
                  deviceScaleFactor=1, mobile=False)
        self.call('Page.enable')

    def call(self, method: str, timeout: float = 20.0, **params):
        self._id += 1
        message = dict(id=self._id, method=method, params=params)
        if self.session:
            message['sessionId'] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b'\0')
        deadline = time.monotonic() + timeout
        while True:
            while b'\0' not in self._buffer:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([self._from_chrome], [], [], left)[0]:
                    raise TimeoutError(f'no answer to {method} within {timeout} s')
                chunk = os.read(self._from_chrome, 1 << 20)
                if not chunk:
                    raise RuntimeError('chromium closed the DevTools pipe')
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b'\0', 1)
            answer = json.loads(raw)
            if answer.get('id') == self._id:
                if 'error' in answer:
                    raise RuntimeError(f'{method}: {answer["error"]}')
                return answer['result']

    def js(self, expression: str):
        result = self.call('Runtime.evaluate', expression=expression, returnByValue=True,
                           awaitPromise=True)
        if 'exceptionDetails' in result:
            raise RuntimeError(f'{expression}: {result["exceptionDetails"]}')
        return result['result'].get('value')

    def wait_for(self, expression: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            value = self.js(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f'{expression} still false after {timeout} s')
            time.sleep(0.02)

    def open(self, path: str) -> None:
        self.call('Page.navigate', url='file://' + osp.abspath(path))
        self.wait_for("document.readyState === 'complete'")

    def center_of(self, selector: str):
        return self.js(f"""(() => {{ const e = document.querySelector({json.dumps(selector)});
            e.scrollIntoView({{block: 'center', inline: 'nearest'}});
            const r = e.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2]; }})()""")

    def click(self, selector: str) -> None:
        x, y = self.center_of(selector)
        for kind in ('mouseMoved', 'mousePressed', 'mouseReleased'):
            self.call('Input.dispatchMouseEvent', type=kind, x=x, y=y, button='left',
                      clickCount=1)

    def key(self, key: str, code: int) -> None:
        for kind in ('rawKeyDown', 'keyUp'):
            self.call('Input.dispatchKeyEvent', type=kind, key=key, code=key,
                      windowsVirtualKeyCode=code)

    def wheel(self, selector: str, delta_y: float) -> None:
        x, y = self.center_of(selector)
        self.call('Input.dispatchMouseEvent', type='mouseWheel', x=x, y=y, deltaX=0,
                  deltaY=delta_y)

    def screenshot(self, selector: str) -> np.ndarray:
        """RGB pixels of an element's box (CSS px = device px here)."""
        rect = self.js(f"""(() => {{ const r = document.querySelector({json.dumps(selector)})
            .getBoundingClientRect(); return [r.left + window.scrollX, r.top + window.scrollY,
            r.width, r.height]; }})()""")
        png = self.call('Page.captureScreenshot', format='png', captureBeyondViewport=True,
                        clip=dict(x=rect[0], y=rect[1], width=rect[2], height=rect[3],
                                  scale=1))['data']
        bgr = cv2.imdecode(np.frombuffer(base64.b64decode(png), np.uint8), cv2.IMREAD_COLOR)
        return bgr[:, :, ::-1]

    def close(self) -> None:
        try:
            self.call('Browser.close', timeout=5)
        except Exception:
            pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        os.close(self._to_chrome)
        os.close(self._from_chrome)
        shutil.rmtree(self.profile, ignore_errors=True)


@pytest.fixture(scope='module')
def page():
    binary = _chromium()
    if binary is None:
        pytest.skip('no Chromium: apt-get install chromium (or set MP3D_CHROMIUM)')
    browser = DevToolsPage(binary)
    yield browser
    browser.close()


def _shown(page) -> int:
    page.wait_for('document.body.dataset.rendered === document.body.dataset.slice')
    number = int(page.js("document.getElementById('slice-number').textContent"))
    assert number == int(page.js('document.body.dataset.slice'))
    return number


def _go(page, z: int) -> None:
    page.js(f'mp3dReport.show({z})')
    assert _shown(page) == z


def _mask(pixels: np.ndarray, rgb, tol: int = 40) -> np.ndarray:
    return (np.abs(pixels.astype(int) - np.array(rgb)) <= tol).all(-1)


def _edge_coverage(mask: np.ndarray, box, scale) -> Dict[str, float]:
    """Fraction of each box edge (view coordinates) with a coloured pixel within 2 px."""
    kx, ky = scale
    x1, y1, x2, y2 = ((box[0] + .5) * kx, (box[1] + .5) * ky, (box[2] + .5) * kx,
                      (box[3] + .5) * ky)
    xs = np.arange(int(x1) + 4, int(x2) - 3)
    ys = np.arange(int(y1) + 4, int(y2) - 3)

    def near_row(y, cols):
        band = mask[max(0, int(round(y)) - 2):int(round(y)) + 3]
        return band[:, cols].any(0).mean()

    def near_col(x, rows):
        band = mask[:, max(0, int(round(x)) - 2):int(round(x)) + 3]
        return band[rows].any(1).mean()

    return dict(top=near_row(y1, xs), bottom=near_row(y2, xs), left=near_col(x1, ys),
                right=near_col(x2, ys))


def test_boxes_drawn_on_their_slices(page, case):
    _, regions, report = case
    page.open(report)
    assert _shown(page) == 5  # opens on the best candidate's best slice
    assert page.js('document.body.dataset.selected') == ''
    width, height = page.js("(() => { const c = document.getElementById('view'); "
                            'return [c.clientWidth, c.clientHeight]; })()')
    assert width == 640 and height == 480  # 64 x 48 px at 0.8 mm: aspect kept
    scale = (width / WIDTH, height / HEIGHT)
    for z in (4, 6):
        _go(page, z)
        red = _mask(page.screenshot('#view'), BOX_RGB)
        coverage = _edge_coverage(red, TRACKS[1][0][z], scale)
        assert min(coverage.values()) > 0.9, (z, coverage)
        tissue = page.screenshot('#view')[320:340, 410:430]  # pixels (41-43, 32-34): body
        assert abs(tissue.mean() - 127.5) < 10  # 40 HU in W 400 / L 40: mid grey
    _go(page, 7)  # between candidates 1 (4-6) and 2 (8-11): nothing drawn
    pixels = page.screenshot('#view')
    assert not _mask(pixels, BOX_RGB, 60).any() and not _mask(pixels, SELECTED_RGB, 60).any()
    assert page.js("document.getElementById('on-slice').textContent") == ''
    _go(page, 9)
    red = _mask(page.screenshot('#view'), BOX_RGB)
    assert min(_edge_coverage(red, TRACKS[2][0][9], scale).values()) > 0.9
    assert not red[:, :int(35 * scale[0])].any()  # candidate 1's place is empty here
    # keys and wheel scroll slice by slice
    page.key('ArrowUp', 38)
    assert _shown(page) == 10
    page.key('ArrowLeft', 37)
    page.key('ArrowLeft', 37)
    assert _shown(page) == 8
    page.wheel('#view', 120)
    assert _shown(page) == 9
    page.key('End', 35)
    assert _shown(page) == NUM_SLICES - 1
    page.key('ArrowUp', 38)  # stays on the last slice
    assert _shown(page) == NUM_SLICES - 1
    assert page.js("document.getElementById('slider').value") == str(NUM_SLICES - 1)


def test_row_click_jumps_to_best_slice(page, case):
    _, regions, report = case
    page.open(report)
    _go(page, 0)
    page.click('#candidates tbody tr[data-candidate="2"]')
    assert _shown(page) == 9
    assert page.js('document.body.dataset.selected') == '2'
    assert page.js('Array.from(document.querySelectorAll("#candidates tr.selected"))'
                   '.map(r => r.dataset.candidate)') == ['2']
    pixels = page.screenshot('#view')
    scale = (640 / WIDTH, 480 / HEIGHT)
    assert min(_edge_coverage(_mask(pixels, SELECTED_RGB), TRACKS[2][0][9], scale).values()) \
        > 0.9
    page.click('#candidates tbody tr[data-candidate="3"]')
    assert _shown(page) == 2 and page.js('document.body.dataset.selected') == '3'


def _row_ids(page, table='candidates'):
    return page.js(f'Array.from(document.querySelectorAll("#{table} tbody tr"))'
                   '.map(r => r.dataset.candidate || r.cells[0].textContent)')


def test_table_sorting(page, case):
    _, regions, report = case
    page.open(report)
    assert _row_ids(page) == ['1', '2', '3']
    score = '#candidates thead th:nth-child(2)'
    page.click(score)  # first click on a score: highest first
    assert _row_ids(page) == ['1', '2', '3']
    assert page.js(f'document.querySelector("{score}").getAttribute("aria-sort")') \
        == 'descending'
    page.click(score)
    assert _row_ids(page) == ['3', '2', '1']
    page.click('#candidates thead th:nth-child(6)')  # number of slices: 3, 4, 1
    assert _row_ids(page) == ['2', '1', '3']
    page.click('#candidates thead th:nth-child(4)')  # first slice: 4, 8, 2
    assert _row_ids(page) == ['3', '1', '2']
    page.click('#candidates tbody tr[data-candidate="1"]')  # rows still work after sorting
    assert _shown(page) == 5


def test_index_page_sorting(page, tmp_path):
    index = str(tmp_path / 'index.html')
    write_html_index([('b', 'b/report.html', 3, 0.7), ('a', 'a/report.html', 1, 0.9),
                      ('c', None, None, None, 'failed')], index)
    page.open(index)
    assert _row_ids(page, 'volumes') == ['b', 'a', 'c']
    page.click('#volumes thead th:nth-child(3)')  # best score, highest first; none last
    assert _row_ids(page, 'volumes') == ['a', 'b', 'c']
    page.click('#volumes thead th:nth-child(1)')
    assert _row_ids(page, 'volumes') == ['a', 'b', 'c']
    page.click('#volumes thead th:nth-child(1)')
    assert _row_ids(page, 'volumes') == ['c', 'b', 'a']
    assert page.js('document.querySelector("#volumes a").getAttribute("href")') \
        == 'b/report.html'


def _set_display(page, element_id: str, value) -> None:
    """Set a display control (a checkbox's ``checked`` or a range's ``value``) as a user
    would, firing its event."""
    if isinstance(value, bool):
        page.js(f"(() => {{ const e = document.getElementById('{element_id}'); "
                f"e.checked = {str(value).lower()}; "
                "e.dispatchEvent(new Event('change')); })()")
    else:
        page.js(f"(() => {{ const e = document.getElementById('{element_id}'); "
                f"e.value = '{value}'; e.dispatchEvent(new Event('input')); }})()")
    _shown(page)


def test_hiding_boxes_labels_and_the_score_threshold(page, case):
    _, regions, report = case
    page.open(report)
    _go(page, 9)  # candidate 2 (highest score 0.8)
    width = page.js("document.getElementById('view').clientWidth")
    scale = (width / WIDTH, width / WIDTH)
    red = _mask(page.screenshot('#view'), BOX_RGB)
    assert min(_edge_coverage(red, TRACKS[2][0][9], scale).values()) > 0.9
    with_labels = red.sum()
    # labels off: the box stays, its label (red text above it) goes
    _set_display(page, 'show-labels', False)
    red = _mask(page.screenshot('#view'), BOX_RGB)
    assert min(_edge_coverage(red, TRACKS[2][0][9], scale).values()) > 0.9
    top = int((TRACKS[2][0][9][1] + 0.5) * scale[1])
    assert not red[:top - 3].any() and red.sum() < with_labels
    # boxes off: nothing drawn
    _set_display(page, 'show-boxes', False)
    assert not _mask(page.screenshot('#view'), BOX_RGB, 60).any()
    _set_display(page, 'show-boxes', True)
    _set_display(page, 'show-labels', True)
    assert _mask(page.screenshot('#view'), BOX_RGB).sum() == with_labels
    # threshold above candidate 2's score: neither drawn nor listed
    _set_display(page, 'score-thr', '0.85')
    assert not _mask(page.screenshot('#view'), BOX_RGB, 60).any()
    assert page.js("document.getElementById('score-thr-value').textContent") == '0.85'
    listed = page.js('Array.from(document.querySelectorAll("#candidates tbody tr"))'
                     '.filter(r => r.offsetParent !== null).map(r => r.dataset.candidate)')
    assert listed == ['1']  # 0.95; candidate 3 scores 0.55
    _set_display(page, 'score-thr', '0.5')
    assert _mask(page.screenshot('#view'), BOX_RGB).sum() == with_labels


def test_table_fits_1366_px(page, case):
    """At 1366 px the candidate table sits beside the view without a cut column."""
    _, _, report = case
    page.call('Emulation.setDeviceMetricsOverride', width=1366, height=800,
              deviceScaleFactor=1, mobile=False)
    try:
        page.open(report)
        _shown(page)
        scroll_width, client_width, right, view_right = page.js(
            "(() => { const s = document.querySelector('.scroll'); "
            "const t = document.getElementById('candidates'); "
            "return [s.scrollWidth, s.clientWidth, t.getBoundingClientRect().right, "
            "document.getElementById('view').getBoundingClientRect().right]; })()")
        assert scroll_width <= client_width and right <= 1366
        assert view_right < page.js("document.getElementById('candidates')"
                                    '.getBoundingClientRect().left')  # beside, not below
    finally:
        page.call('Emulation.setDeviceMetricsOverride', width=1400, height=1000,
                  deviceScaleFactor=1, mobile=False)


def _grey(page, rows, cols) -> float:
    return float(page.screenshot('#view')[rows, cols].mean())


def test_window_presets_change_the_pixels(page, case):
    """Each preset re-windows the HU coded slice in the browser: body (40 HU) and air
    (-1000 HU) take the grey levels of that window; the input's own window is offered when
    the series has one."""
    result, regions, report = case
    page.open(report)
    _go(page, 7)  # no box drawn
    # 96 body voxels (x 38-49, y 26-33, away from the lesion), 4 air voxels in a corner
    body, air = (slice(260, 340), slice(380, 500)), (slice(5, 25), slice(5, 25))

    def expected(hu, centre, width):
        return float(np.clip((hu - centre + width / 2) / width * 255, 0, 255))

    assert page.js('document.body.dataset.window') == '40/400'
    for name in ('lung', 'bone', 'brain', 'soft tissue'):
        page.js(f"(() => {{ const w = document.getElementById('window'); w.value = '{name}'; "
                "w.dispatchEvent(new Event('change')); })()")
        _shown(page)
        centre, width = WINDOW_PRESETS[name]
        assert page.js('document.body.dataset.window') == f'{centre:g}/{width:g}'
        assert abs(_grey(page, *body) - expected(40, centre, width)) < 8, name
        # air: -1000 HU is coded as -993 HU (15.4 HU steps)
        assert abs(_grey(page, *air) - expected(-993, centre, width)) < 4, name
    assert page.js("document.querySelector('#window option[value=input]').disabled")
    dicom = str(osp.join(osp.dirname(report), 'dicom_window.html'))
    with open(dicom, 'w', encoding='utf-8') as handle:
        handle.write(render_html_report(_with_metadata(result, WindowCenter='-100',
                                                       WindowWidth='300'), regions))
    page.open(dicom)
    _go(page, 7)
    page.js("(() => { const w = document.getElementById('window'); w.value = 'input'; "
            "w.dispatchEvent(new Event('change')); })()")
    _shown(page)
    assert abs(_grey(page, *body) - expected(40, -100, 300)) < 8  # 40 HU in W 300 / L -100


def test_orientation_letters_and_scale_bar(page, case):
    """R on the left edge, L right, A top, P bottom (LPS grid, radiological view); the scale
    bar's length is its label's mm at the view's scale."""
    _, _, report = case
    page.open(report)
    _shown(page)
    view = page.js("(() => { const r = document.getElementById('view')"
                   '.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })()')
    letters = page.js("""Object.fromEntries(['left', 'right', 'top', 'bottom'].map(s => {
        const e = document.getElementById('orient-' + s), r = e.getBoundingClientRect();
        return [s, [e.textContent, (r.left + r.right) / 2, (r.top + r.bottom) / 2]]; }))""")
    assert {s: v[0] for s, v in letters.items()} == dict(left='R', right='L', top='A',
                                                         bottom='P')
    cx, cy = (view[0] + view[2]) / 2, (view[1] + view[3]) / 2
    assert letters['left'][1] < view[0] + 20 and abs(letters['left'][2] - cy) < 3
    assert letters['right'][1] > view[2] - 20 and abs(letters['right'][2] - cy) < 3
    assert letters['top'][2] < view[1] + 20 and abs(letters['top'][1] - cx) < 3
    assert letters['bottom'][2] > view[3] - 20 and abs(letters['bottom'][1] - cx) < 3
    width, label, mm = page.js("[document.getElementById('scale-bar').getBoundingClientRect()"
                               ".width, document.getElementById('scale-label').textContent, "
                               "document.getElementById('scale').dataset.mm]")
    # 64 px x 0.8 mm = 51.2 mm shown on 640 px: 12.5 px per mm; a quarter is 12.8 mm -> 10 mm
    assert (mm, label) == ('10', '1 cm') and width == pytest.approx(125, abs=1)


def _chest_like_volume(num_slices: int, side: int = 512, seed: int = 0) -> np.ndarray:
    """``(Z, side, side)`` float32 HU: body with fat and soft tissue, lungs with texture, a
    spine and ribs, correlated noise (25 HU) -- compresses like a chest CT."""
    rng = np.random.default_rng(seed)
    y, x = (np.mgrid[0:side, 0:side].astype(np.float32) - side / 2) / side
    base = np.full((side, side), -1000, np.float32)
    base[(x / 0.42)**2 + (y / 0.34)**2 < 1] = -100
    base[(x / 0.39)**2 + (y / 0.31)**2 < 1] = 40
    lungs = ((np.abs(x) - 0.18) / 0.13)**2 + ((y + 0.02) / 0.2)**2 < 1
    base[(x / 0.04)**2 + ((y - 0.22) / 0.04)**2 < 1] = 600
    body = base > -1000
    volume = np.empty((num_slices, side, side), np.float32)
    for z in range(num_slices):
        noise = cv2.GaussianBlur(rng.standard_normal((side, side), np.float32), (0, 0), 0.8)
        texture = cv2.GaussianBlur(rng.standard_normal((side, side), np.float32), (0, 0), 2)
        volume[z] = np.where(lungs, -850 + 60 * texture, base) + np.where(body, 25 * noise, 0)
    return volume


def test_300_slice_report_size_and_opening_time(page, case, tmp_path):
    """A 300-slice 512 x 512 chest-like scan: the report is under 8 MB and shows its first
    picture within 2 s of the navigation in headless Chromium (generous margin: typically
    well under 1 s)."""
    result, regions, _ = case
    hu = _chest_like_volume(300)
    grid = dataclasses.replace(result.volume.geometry, size=(512, 512, 300))
    volume = dataclasses.replace(result.volume, hu=hu, geometry=grid)
    path = str(tmp_path / 'large.html')
    write_html_report(dataclasses.replace(result, volume=volume), path, regions)
    size = osp.getsize(path)
    assert size < 8e6, size
    assert size > 300 * SLICE_BUDGET * 0.3  # real pictures, not blanks
    start = time.monotonic()
    page.open(path)
    _shown(page)
    assert time.monotonic() - start < 2.0
    pixels = page.screenshot('#view')
    assert pixels.std() > 20  # a picture was drawn
