// nbtrack's CopyButton (widgets/compare/actions.py): copies the model's text to the clipboard
// in the click handler, where a browser allows it.
export default {
  render({ model, el }) {
    const button = document.createElement("button");
    button.className = "jupyter-widgets jupyter-button widget-button nbtrack-copy";
    const label = () => { button.textContent = model.get("description"); };
    label();
    model.on("change:description", label);
    button.addEventListener("click", async () => {
      let ok = true;
      try { await navigator.clipboard.writeText(model.get("text")); }
      catch (e) { ok = false; }
      model.set("copied", ok);
      model.set("clicks", model.get("clicks") + 1);
      model.save_changes();
    });
    el.appendChild(button);
  }
};
