(function () {
  var data = JSON.parse(document.getElementById('report-data').textContent);
  var slices = JSON.parse(document.getElementById('slice-data').textContent);
  var n = slices.length;
  var canvas = document.getElementById('view');
  var ctx = canvas.getContext('2d');
  var slider = document.getElementById('slider');
  var sliceNumber = document.getElementById('slice-number');
  var sliceZ = document.getElementById('slice-z');
  var onSlice = document.getElementById('on-slice');
  var table = document.getElementById('candidates');
  var rows = {};
  Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
    if (r.dataset.candidate) rows[r.dataset.candidate] = r; });
  var physW = data.width * data.spacing[0], physH = data.height * data.spacing[1];
  var f = data.view_size / Math.max(physW, physH);
  var cssW = Math.max(1, Math.round(physW * f)), cssH = Math.max(1, Math.round(physH * f));
  var dpr = window.devicePixelRatio || 1;
  canvas.style.width = cssW + 'px';
  canvas.style.height = cssH + 'px';
  canvas.width = Math.round(cssW * dpr);
  canvas.height = Math.round(cssH * dpr);
  canvas.closest('.viewer').style.width = (cssW + 20) + 'px';
  var kx = cssW / data.width, ky = cssH / data.height;
  function rgb(c) { return 'rgb(' + c[0] + ',' + c[1] + ',' + c[2] + ')'; }
  var images = new Array(n);
  // decoded HU codes (html_slices): a few slices kept, least recently used dropped
  var codes = new Map(), MAX_CODES = 24;
  var work = document.createElement('canvas'), wctx = null, frame = null;
  var windowMenu = document.getElementById('window');
  var lut = new Uint8ClampedArray(256);
  function setWindow() {
    var w = data.windows[windowMenu.value], low = w[0] - w[1] / 2;
    for (var c = 0; c < 256; c++) lut[c] = (data.code_hu[c] - low) / w[1] * 255;
    document.body.dataset.window = w[0] + '/' + w[1];
  }
  function codesOf(z, im) {
    var got = codes.get(z);
    if (got) { codes.delete(z); codes.set(z, got); return got; }
    if (work.width !== im.naturalWidth || work.height !== im.naturalHeight || !wctx) {
      work.width = im.naturalWidth; work.height = im.naturalHeight;
      wctx = work.getContext('2d', {willReadFrequently: true});
      frame = wctx.createImageData(work.width, work.height);
    }
    wctx.drawImage(im, 0, 0);
    var rgba = wctx.getImageData(0, 0, work.width, work.height).data;
    got = new Uint8Array(rgba.length / 4);
    for (var i = 0, j = 1; i < got.length; i++, j += 4) got[i] = rgba[j];
    codes.set(z, got);
    if (codes.size > MAX_CODES) codes.delete(codes.keys().next().value);
    return got;
  }
  function windowed(z, im) {
    var c = codesOf(z, im), px = frame.data;
    for (var i = 0, j = 0; i < c.length; i++, j += 4) {
      var g = lut[c[i]];
      px[j] = g; px[j + 1] = g; px[j + 2] = g; px[j + 3] = 255;
    }
    wctx.putImageData(frame, 0, 0);
    return work;
  }
  var mmPerPx = physW / cssW, barMm = [5, 10, 20, 50, 100, 200].filter(function (mm) {
    return mm <= physW / 4; }).pop() || 5;
  document.getElementById('scale-bar').style.width = (barMm / mmPerPx) + 'px';
  document.getElementById('scale-label').textContent =
    barMm >= 10 && barMm % 10 === 0 ? (barMm / 10) + ' cm' : barMm + ' mm';
  document.getElementById('scale').dataset.mm = String(barMm);
  function image(z) {
    if (!images[z]) {
      var im = new Image();
      im.src = 'data:image/jpeg;base64,' + slices[z];
      im.decoding = 'sync';
      images[z] = im;
    }
    return images[z];
  }
  var current = -1, selected = null;
  var showBoxes = document.getElementById('show-boxes');
  var showLabels = document.getElementById('show-labels');
  var scoreThr = document.getElementById('score-thr');
  var scoreThrValue = document.getElementById('score-thr-value');
  function shown(c) {
    return c.score === null || c.score >= parseFloat(scoreThr.value);
  }
  function view(b) {
    var x1 = (b[0] + 0.5) * kx, y1 = (b[1] + 0.5) * ky;
    return [x1, y1, (b[2] + 0.5) * kx - x1, (b[3] + 0.5) * ky - y1];
  }
  function drawBox(c, b) {
    var isSel = c.id === selected;
    var v = view(b);
    ctx.lineWidth = isSel ? 3 : 2;
    ctx.strokeStyle = rgb(isSel ? data.selected_rgb : data.box_rgb);
    ctx.strokeRect(v[0], v[1], v[2], v[3]);
    if (!showLabels.checked) return;
    var label = '#' + c.id + ' ' + (c.score === null ? '' : c.score.toFixed(2));
    ctx.font = '12px system-ui, sans-serif';
    var w = ctx.measureText(label).width + 6, h = 15;
    var ly = v[1] - h - 2 >= 0 ? v[1] - h - 2 : v[1] + v[3] + 2;
    var lx = Math.min(Math.max(0, v[0]), cssW - w);
    ctx.fillStyle = 'rgba(0,0,0,0.65)';
    ctx.fillRect(lx, ly, w, h);
    ctx.fillStyle = rgb(isSel ? data.selected_rgb : data.box_rgb);
    ctx.textBaseline = 'top';
    ctx.fillText(label, lx + 3, ly + 2);
  }
  function draw() {
    var z = current, im = image(z);
    if (!im.complete || !im.naturalWidth) {
      im.addEventListener('load', function () { if (current === z) draw(); }, {once: true});
      return;
    }
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(windowed(z, im), 0, 0, cssW, cssH);
    var here = showBoxes.checked ? data.candidates.filter(function (c) {
      return c.boxes[z] && shown(c); }) : [];
    here.sort(function (a, b) { return (a.id === selected) - (b.id === selected); });
    here.forEach(function (c) { drawBox(c, c.boxes[z]); });
    document.body.dataset.rendered = String(z);
  }
  function show(z) {
    z = Math.max(0, Math.min(n - 1, Math.round(z)));
    if (z === current) return;
    current = z;
    slider.value = String(z);
    sliceNumber.textContent = String(z);
    sliceZ.textContent = data.z_mm[z].toFixed(1);
    document.body.dataset.slice = String(z);
    var here = data.candidates.filter(function (c) { return c.boxes[z] && shown(c); });
    onSlice.textContent = here.length ? 'On this slice: ' + here.map(function (c) {
      return '#' + c.id; }).join(', ') : '';
    Object.keys(rows).forEach(function (id) {
      rows[id].classList.toggle('onslice', here.some(function (c) {
        return String(c.id) === id; })); });
    draw();
    for (var d = 1; d <= 2; d++) {
      if (z + d < n) image(z + d);
      if (z - d >= 0) image(z - d);
    }
  }
  function select(id) {
    selected = id;
    document.body.dataset.selected = id === null ? '' : String(id);
    Object.keys(rows).forEach(function (k) {
      rows[k].classList.toggle('selected', String(id) === k); });
    var c = data.candidates.filter(function (c) { return c.id === id; })[0];
    if (c) {
      var target = c.best;
      current === target ? draw() : show(target);
    } else {
      draw();
    }
  }
  function applyDisplay() {
    scoreThrValue.textContent = parseFloat(scoreThr.value).toFixed(2);
    document.body.dataset.scoreThr = scoreThr.value;
    data.candidates.forEach(function (c) {
      var row = rows[String(c.id)];
      if (row) row.classList.toggle('below-thr', !shown(c));
    });
    var z = current;
    current = -1;
    show(z);
  }
  [showBoxes, showLabels].forEach(function (box) {
    box.addEventListener('change', applyDisplay); });
  scoreThr.addEventListener('input', applyDisplay);
  windowMenu.addEventListener('change', function () { setWindow(); applyDisplay(); });
  setWindow();
  slider.addEventListener('input', function () { show(parseInt(slider.value, 10)); });
  document.getElementById('prev').addEventListener('click', function () { show(current - 1); });
  document.getElementById('next').addEventListener('click', function () { show(current + 1); });
  canvas.parentNode.addEventListener('wheel', function (ev) {
    if (ev.deltaY === 0) return;
    ev.preventDefault();
    show(current + (ev.deltaY > 0 ? 1 : -1));
  }, {passive: false});
  document.addEventListener('keydown', function (ev) {
    if (ev.ctrlKey || ev.altKey || ev.metaKey) return;
    var t = ev.target;
    if (t && t !== slider && (t.tagName === 'INPUT' || t.tagName === 'TEXTAREA')) return;
    var step = {ArrowUp: 1, ArrowRight: 1, ArrowDown: -1, ArrowLeft: -1, PageUp: 10,
                PageDown: -10}[ev.key];
    if (step !== undefined) show(current + step);
    else if (ev.key === 'Home') show(0);
    else if (ev.key === 'End') show(n - 1);
    else return;
    ev.preventDefault();
  });
  Object.keys(rows).forEach(function (id) {
    var row = rows[id];
    row.addEventListener('click', function () { select(parseInt(id, 10)); });
    row.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter') { ev.preventDefault(); select(parseInt(id, 10)); } });
  });
  canvas.addEventListener('click', function (ev) {
    var r = canvas.getBoundingClientRect();
    var x = ev.clientX - r.left, y = ev.clientY - r.top, hit = null;
    data.candidates.forEach(function (c) {
      var b = c.boxes[current];
      if (!b || !shown(c) || !showBoxes.checked) return;
      var v = view(b);
      if (x >= v[0] - 3 && x <= v[0] + v[2] + 3 && y >= v[1] - 3 && y <= v[1] + v[3] + 3 &&
          (hit === null || c.score > hit.score)) hit = c;
    });
    if (hit) select(hit.id);
  });
  makeSortable(table);
  window.mp3dReport = {show: show, select: select, numSlices: n,
                       current: function () { return current; }};
  document.body.dataset.selected = '';
  show(data.candidates.length ? data.candidates[0].best : Math.floor(n / 2));
})();
