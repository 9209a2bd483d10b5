// Apply the saved theme before the first paint (no flash of the wrong theme). A classic
// script in <head>, not a module: it runs before the page is drawn. A file rather than
// an inline script, because the Content-Security-Policy allows scripts from 'self' only.
try {
  var t = JSON.parse(localStorage.getItem("goapp.settings") || "{}").theme;
  if (t === "light" || t === "dark") document.documentElement.dataset.theme = t;
} catch (e) {}
