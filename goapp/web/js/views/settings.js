// Settings: theme, sound, move confirmation, coordinates (kept in localStorage).

import { h, settings, saveSettings, playStoneSound } from "../ui.js";

function choice(id, label, key, options, hint) {
  const sel = h("select", { id, onchange: () => saveSettings({ [key]: sel.value }) },
    options.map(([v, t]) => h("option", { value: v, selected: settings[key] === v }, t)));
  return [h("label", { for: id }, label), sel, hint ? h("small.hint", null, hint) : null];
}

function toggle(id, label, key, after) {
  const box = h("input", { id, type: "checkbox", checked: !!settings[key],
    onchange: () => { saveSettings({ [key]: box.checked }); if (after) after(box.checked); } });
  return h("label.check", { for: id }, box, label);
}

export function settingsView(main) {
  main.append(h("section.card.narrow", null,
    h("h1", null, "Settings"),
    h("div.stack", null,
      choice("set-theme", "Theme", "theme", [["system", "Follow the system"], ["light", "Light"], ["dark", "Dark"]]),
      choice("set-confirm", "Confirm moves", "confirmMove", [["auto", "On touch screens"], ["on", "Always"], ["off", "Never"]],
        "With confirmation, the first tap shows the stone and a second tap (or Confirm) plays it."),
      toggle("set-sound", "Sound when a stone is played", "sound", (on) => on && playStoneSound()),
      toggle("set-coords", "Show coordinates", "coords")),
    h("h2", null, "Keyboard"),
    h("ul.keys", null,
      h("li", null, h("kbd", null, "Tab"), " to the board, then ", h("kbd", null, "←↑→↓"), " to move the cursor and ", h("kbd", null, "Enter"), " to play"),
      h("li", null, "Review: ", h("kbd", null, "←"), " ", h("kbd", null, "→"), " one move, ", h("kbd", null, "Home"), " ", h("kbd", null, "End"), " first/last"),
      h("li", null, h("kbd", null, "t"), " toggles light/dark"))));
  return null;
}
