// Log in / register.

import { login, register, session } from "../api.js";
import { navigate } from "../nav.js";
import { h, toast } from "../ui.js";

export function authView(main, { mode }) {
  const isLogin = mode === "login";
  if (session.user) { navigate("/", { replace: true }); return null; }
  const error = h("p.form-error", { role: "alert", id: "auth-error" });
  const name = h("input", { id: "auth-name", name: "username", autocomplete: "username", required: true,
    minlength: "3", maxlength: "24", autocapitalize: "off", spellcheck: "false" });
  const pass = h("input", { id: "auth-password", name: "password", type: "password", required: true,
    minlength: "8", autocomplete: isLogin ? "current-password" : "new-password" });
  const submit = h("button.btn.primary.wide", { type: "submit", id: "auth-submit" }, isLogin ? "Log in" : "Create account");
  const form = h("form.stack", {
    onsubmit: async (e) => {
      e.preventDefault();
      error.textContent = "";
      submit.disabled = true;
      try {
        if (isLogin) await login(name.value.trim(), pass.value);
        else await register(name.value.trim(), pass.value);
        toast(isLogin ? `Welcome back, ${session.user.name}` : `Welcome, ${session.user.name}`);
        const next = new URLSearchParams(location.search).get("next");
        navigate(next && next.startsWith("/") && !next.startsWith("//") ? next : "/");
      } catch (err) {
        error.textContent = err.code === "rate_limited" ? "Too many attempts: wait a minute and try again." : err.message;
        submit.disabled = false;
      }
    },
  },
  h("label", { for: "auth-name" }, "Name"), name,
  isLogin ? null : h("small.hint", null, "3 to 24 letters, digits, _ - ."),
  h("label", { for: "auth-password" }, "Password"), pass,
  isLogin ? null : h("small.hint", null, "At least 8 characters."),
  error, submit);
  main.append(h("section.card.narrow.auth", null,
    h("h1", null, isLogin ? "Log in" : "Create an account"),
    form,
    h("p.muted", null, isLogin ? ["New here? ", h("a", { href: "/register" }, "Create an account")]
      : ["Already registered? ", h("a", { href: "/login" }, "Log in")])));
  name.focus();
  return null;
}
