// The dashboard's only script: it keeps the page live over server-sent events. The server
// renders every fragment (escaped); this only puts it in place. No framework, nothing fetched
// from elsewhere.
"use strict";
(function () {
  var url = document.body.getAttribute("data-live");
  if (!url) {
    return;
  }
  var source = new EventSource(url);
  source.addEventListener("rows", function (e) {
    var rows = document.getElementById("rows");
    if (rows) {
      rows.innerHTML = e.data;
    }
  });
  source.addEventListener("header", function (e) {
    var header = document.getElementById("header");
    if (header) {
      header.innerHTML = e.data;
    }
  });
  source.addEventListener("log", function (e) {
    var transcript = document.getElementById("transcript");
    if (transcript) {
      transcript.appendChild(document.createTextNode(JSON.parse(e.data)));
    }
  });
  source.addEventListener("result", function (e) {
    var result = document.getElementById("result");
    if (result) {
      result.innerHTML = e.data;
    }
    source.close();
  });
})();
