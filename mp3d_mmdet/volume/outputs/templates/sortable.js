function makeSortable(table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    if (!th.dataset.sort) return;
    function sort() {
      var dir = th.getAttribute('aria-sort') === 'ascending' ? 'descending' :
        th.getAttribute('aria-sort') === 'descending' ? 'ascending' :
        (th.dataset.first === 'desc' ? 'descending' : 'ascending');
      var sign = dir === 'ascending' ? 1 : -1;
      var body = table.tBodies[0];
      var rows = Array.prototype.filter.call(body.rows, function (r) {
        return !r.classList.contains('empty'); });
      var keyed = rows.map(function (row, i) {
        var cell = row.cells[col];
        var raw = cell.dataset.value !== undefined ? cell.dataset.value : cell.textContent;
        var key = th.dataset.sort === 'num' ? parseFloat(raw) : raw.toLowerCase();
        return {row: row, key: key, i: i};
      });
      keyed.sort(function (a, b) {
        var am = typeof a.key === 'number' && isNaN(a.key);
        var bm = typeof b.key === 'number' && isNaN(b.key);
        if (am || bm) return am === bm ? a.i - b.i : (am ? 1 : -1);
        if (a.key < b.key) return -sign;
        if (a.key > b.key) return sign;
        return a.i - b.i;
      });
      keyed.forEach(function (k) { body.appendChild(k.row); });
      Array.prototype.forEach.call(heads, function (h) {
        if (h.dataset.sort) h.setAttribute('aria-sort', 'none'); });
      th.setAttribute('aria-sort', dir);
      table.dataset.sortColumn = th.textContent;
      table.dataset.sortDirection = dir;
    }
    th.addEventListener('click', sort);
    th.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); sort(); } });
  });
}
