// The review page's forms post the review version they loaded (optimistic
// lock). An htmx Accept saves without reloading the page, so its response
// carries the new version in X-Review-Version: copy it into every form, or
// the next save from this page would be refused as stale.
document.addEventListener("htmx:afterRequest", function (event) {
  var version = event.detail.xhr && event.detail.xhr.getResponseHeader("X-Review-Version");
  if (!version) return;
  document.querySelectorAll('input[name="version"], input[name$="-version"]').forEach(function (input) {
    input.value = version;
  });
});
