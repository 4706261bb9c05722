// Long tables a reader can use: sort by a column, filter rows, save as CSV. The suite's only
// script (DESIGN §10): the page's Content-Security-Policy allows this exact text by its SHA-256
// hash and nothing else. It reads cells with textContent and writes with textContent and
// createElement, so a value from the data stays text; it never builds markup from a string.
// Tables are pandas Styler tables with the class "sr-table": data cells carry "col<j>", the
// last header row's column headings "col_heading level<L> col<j>", index cells "row_heading".
(function () {
  "use strict";
  function number(text) {
    // "11,106" "59.2%" "+2.1 pp" "14,466 RUB" "-3.5 min" "< 0.001": the number; else null
    var t = text.replace(/[\s\u00a0,]/g, "").replace(/^[<>]=?/, "").replace(/\u2212/g, "-");
    var m = t.match(/^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?/i);
    if (!m || !/^[%A-Za-z]*$/.test(t.slice(m[0].length))) { return null; }
    return parseFloat(m[0]);
  }
  function compare(a, b) {
    if (a === "" || b === "") { return a === b ? 0 : (a === "" ? 1 : -1); }   // empty cells last
    var x = number(a), y = number(b);
    if (x !== null && y !== null) { return x - y; }
    return a.localeCompare(b, undefined, {numeric: true, sensitivity: "base"});
  }
  function csvField(text) {
    // a number as a spreadsheet reads it: "18,555" -> 18555 (percentages and units stay as shown)
    var t = /^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$/.test(text) ? text.replace(/,/g, "") : text;
    // a text starting like a formula is not run by a spreadsheet (OWASP CSV injection)
    if (/^[=+\-@\t\r]/.test(t) && number(t) === null) { t = "'" + t; }
    return /[",\n\r]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
  }
  function enhance(table, k) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var rows = Array.prototype.slice.call(body.rows);
    var headRows = table.tHead ? table.tHead.rows : [];
    // the columns: index levels first (row_heading level<i>), then data columns (col<j>)
    var columns = [];
    var first = rows.length ? rows[0] : null;
    if (first) {
      Array.prototype.forEach.call(first.cells, function (cell) {
        var m;
        if (cell.classList.contains("row_heading")) {
          m = cell.className.match(/\blevel(\d+)\b/);
          columns.push({cls: "row_heading level" + (m ? m[1] : "0"), index: true, level: m ? m[1] : "0"});
        } else if ((m = cell.className.match(/\bcol(\d+)\b/))) {
          columns.push({cls: "col" + m[1], index: false, col: m[1]});
        }
      });
    }
    function cellOf(row, c) {
      var sel = c.index ? "th.row_heading.level" + c.level : "td.col" + c.col;
      return row.querySelector(sel);
    }
    function textOf(row, c) {
      var cell = cellOf(row, c);
      return cell ? cell.textContent.trim() : "";
    }
    function heading(c) {
      // the column's label: its headings from the top header row down, joined with " / "
      var parts = [];
      Array.prototype.forEach.call(headRows, function (hr) {
        Array.prototype.forEach.call(hr.cells, function (th) {
          var hit = c.index ? th.classList.contains("index_name") && th.classList.contains("level" + c.level)
            : th.classList.contains("col_heading") && spans(th, c.col);
          var t = th.textContent.trim();
          if (hit && t && parts.indexOf(t) < 0) { parts.push(t); }
        });
      });
      return parts.join(" / ");
    }
    function spans(th, col) {
      // a heading covers col when it is col<j> itself, or an upper level whose colspan reaches it
      var m = th.className.match(/\bcol(\d+)\b/);
      if (!m) { return false; }
      var start = parseInt(m[1], 10), width = parseInt(th.getAttribute("colspan") || "1", 10);
      var j = parseInt(col, 10);
      return j >= start && j < start + width;
    }
    var headings = columns.map(heading);   // before the sort marks join the headings' text
    var tools = document.createElement("div");
    tools.className = "sr-tools";
    var search = document.createElement("input");
    search.type = "search";
    search.placeholder = "Filter rows";
    search.setAttribute("aria-label", "Filter the rows of this table");
    var save = document.createElement("button");
    save.type = "button";
    save.textContent = "Download CSV";
    var count = document.createElement("span");
    count.className = "sr-count";
    tools.appendChild(search);
    tools.appendChild(save);
    tools.appendChild(count);
    table.parentNode.insertBefore(tools, table);
    function shown() {   // in the order on the page (after a sort)
      return Array.prototype.filter.call(body.rows, function (r) { return r.style.display !== "none"; });
    }
    function recount() {
      var n = shown().length;
      count.textContent = n === rows.length ? rows.length + " rows; click a column heading to sort"
        : n + " of " + rows.length + " rows match";
    }
    search.addEventListener("input", function () {
      var q = search.value.trim().toLowerCase();
      rows.forEach(function (r) {
        r.style.display = !q || r.textContent.toLowerCase().indexOf(q) >= 0 ? "" : "none";
      });
      recount();
    });
    save.addEventListener("click", function () {
      var lines = [headings.map(csvField).join(",")];
      shown().forEach(function (r) {
        lines.push(columns.map(function (c) { return csvField(textOf(r, c)); }).join(","));
      });
      var blob = new Blob(["\ufeff" + lines.join("\r\n") + "\r\n"], {type: "text/csv;charset=utf-8"});
      var a = document.createElement("a");
      var caption = table.caption ? table.caption.textContent : "table";
      a.download = (caption.replace(/[^\w.-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 80) || "table") + ".csv";
      a.href = URL.createObjectURL(blob);
      document.body.appendChild(a);
      a.click();
      setTimeout(function () { URL.revokeObjectURL(a.href); a.remove(); }, 0);
    });
    // sorting: a click on a heading of the last header row (or an index name) sorts by it;
    // a second click reverses; rows keep their order on ties
    columns.forEach(function (c) {
      var th = null;
      Array.prototype.forEach.call(headRows, function (hr) {
        Array.prototype.forEach.call(hr.cells, function (cell) {
          var hit = c.index ? cell.classList.contains("index_name") && cell.classList.contains("level" + c.level)
            : cell.classList.contains("col_heading") && cell.classList.contains("col" + c.col);
          if (hit) { th = cell; }   // the deepest header row's heading wins
        });
      });
      if (!th) { return; }
      th.classList.add("sr-sortable");
      th.setAttribute("tabindex", "0");
      th.setAttribute("title", "Sort by this column");
      var mark = document.createElement("span");
      mark.className = "sr-mark";
      th.appendChild(mark);
      var direction = 0;
      function sort() {
        direction = direction === 1 ? -1 : 1;
        table.querySelectorAll(".sr-mark").forEach(function (m) { m.textContent = ""; });
        mark.textContent = direction === 1 ? " \u25b2" : " \u25bc";
        var keyed = rows.map(function (r, i) { return {r: r, i: i, t: textOf(r, c)}; });
        keyed.sort(function (a, b) {
          var d = compare(a.t, b.t);
          if (a.t === "" || b.t === "") { return d || a.i - b.i; }   // empty cells stay last both ways
          return direction * d || a.i - b.i;
        });
        keyed.forEach(function (x) { body.appendChild(x.r); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sort(); }
      });
    });
    recount();
  }
  function start() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sr-table"), enhance);
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
