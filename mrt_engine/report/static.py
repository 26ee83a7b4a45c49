"""The page's inline CSS and JavaScript (kept as strings: the report is one file, no assets).

Script contract (the browser test relies on it): an ``error`` listener installed first
writes every uncaught error into ``#report-errors`` and sets ``data-report-status="error"``
on ``<body>``; the main script sets ``data-report-status="ok"`` when it has finished. A
header with ``data-sort`` sorts the index table on click (numbers from each cell's
``data-v``, empty last); ``#sort=KEY`` or ``#sort=-KEY`` in the URL sorts on load.
"""

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1200px;
       padding: 16px 24px; color: #222; background: #fff; }
h1 { font-size: 22px; margin: 4px 0 8px; } h2 { font-size: 18px; margin: 0 0 8px; }
.meta { color: #555; margin: 2px 0; }
table { border-collapse: collapse; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; white-space: nowrap; }
#index { font-size: 13px; }
th { background: #f3f3f3; white-space: normal; }
td.text, th.text { text-align: left; }
.scroll { overflow-x: auto; }
table.sortable th[data-sort] { cursor: pointer; user-select: none; }
table.sortable th[aria-sort=ascending]::after { content: " \\25B2"; }
table.sortable th[aria-sort=descending]::after { content: " \\25BC"; }
.legend { display: flex; align-items: center; gap: 8px; margin: 8px 0 16px; }
.legend .bar { width: 240px; height: 14px; border: 1px solid #ccc; }
section.trace { border-top: 2px solid #ddd; padding: 14px 0 8px; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
svg.chart { background: #fcfcfc; border: 1px solid #eee; }
svg .grid { stroke: #e6e6e6; stroke-width: 1; } svg .mark { stroke: #9aa7ff; stroke-dasharray: 4 3; }
svg .line { fill: none; stroke: #3b5bdb; stroke-width: 1.8; } svg .point { fill: #3b5bdb; stroke: #333; stroke-width: .6; }
svg .tick { font-size: 10px; fill: #666; } svg .axis { font-size: 11px; fill: #333; }
pre.problem { white-space: pre-wrap; background: #f7f7f7; padding: 6px 8px; margin: 4px 0 8px; max-height: 12em; overflow: auto; }
.episodes { margin-top: 8px; }
.episode { border: 1px solid #ddd; border-left-width: 6px; margin: 4px 0; padding: 4px 8px; }
.episode .head { font-size: 12px; color: #444; margin-bottom: 2px; }
.episode .text { white-space: pre-wrap; word-break: break-word; font-family: ui-monospace, monospace; font-size: 12.5px; }
.empty { color: #888; font-style: italic; }
#report-errors { color: #b00; white-space: pre-wrap; }
#report-errors:empty { display: none; }
"""

# Installed in <head>, before anything else runs, so errors anywhere later are caught.
ERROR_HOOK = """
window.addEventListener('error', function (e) {
  var box = document.getElementById('report-errors');
  var text = (e && e.message ? e.message : 'script error') + (e && e.lineno ? ' (line ' + e.lineno + ')' : '');
  if (box) { box.textContent += text + '\\n'; }
  if (document.body) { document.body.setAttribute('data-report-status', 'error'); }
});
"""

MAIN = """
(function () {
  function value(row, col) {
    var cell = row.cells[col];
    var v = cell ? cell.getAttribute('data-v') : null;
    if (v === null || v === '') { return null; }
    var n = Number(v);
    return isNaN(n) ? v.toLowerCase() : n;
  }
  function sortTable(table, th, descending) {
    var col = th.cellIndex, body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = value(a, col), y = value(b, col);
      if (x === null || y === null) { return (x === null) - (y === null); }  // empty cells last
      var c = x < y ? -1 : (x > y ? 1 : 0);
      return descending ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.querySelectorAll('th'), function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', descending ? 'descending' : 'ascending');
  }
  var table = document.getElementById('index');
  Array.prototype.forEach.call(table.querySelectorAll('th[data-sort]'), function (th) {
    th.addEventListener('click', function () {
      sortTable(table, th, th.getAttribute('aria-sort') === 'ascending');
    });
  });
  var m = /(?:^#|&)sort=(-?)([\\w.-]+)/.exec(window.location.hash);
  if (m) {
    var th = table.querySelector('th[data-sort="' + m[2] + '"]');
    if (th) { sortTable(table, th, m[1] === '-'); }
  }
  var count = document.querySelectorAll('.episode').length;
  document.getElementById('report-status').textContent = 'loaded: ' + count + ' episodes';
  if (document.body.getAttribute('data-report-status') !== 'error') {
    document.body.setAttribute('data-report-status', 'ok');
  }
})();
"""
