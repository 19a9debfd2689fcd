// nbtrack's lineage graph (widgets/lineage.py): draws the layout Python computed
// (query/lineage_svg.layout, the same one the static SVG is drawn from) and sets `selected` to
// the id of a clicked node. Every text goes in with textContent: the data is the user's.
const NS = "http://www.w3.org/2000/svg";
const COLOURS = {
  dataset: ["#e8f1fb", "#4a7fb5"],
  run: ["#eaf6ea", "#4b9a4b"],
  version: ["#fff4e0", "#c98a1b"],
  inference: ["#f3ecfa", "#8259b0"],
  prediction: ["#f4f4f4", "#777777"],
  more: ["#ffffff", "#aaaaaa"],
};

function svgEl(name, attrs) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  return node;
}

function titled(node, text) {
  const title = svgEl("title");
  title.textContent = text;
  node.appendChild(title);
  return node;
}

function edgePath(e) {
  const mid = (e.x1 + e.x2) / 2;
  return `M${e.x1},${e.y1} C${mid},${e.y1} ${mid},${e.y2} ${e.x2},${e.y2}`;
}

function draw(model, el) {
  const laid = model.get("layout") || {};
  const selected = model.get("selected");
  el.replaceChildren();
  const box = document.createElement("div");
  box.className = "nbtrack-lineage-view";
  box.style.cssText = "overflow:auto;max-height:640px;font-family:sans-serif;font-size:11px";
  const svg = svgEl("svg", {
    class: "nbtrack-lineage-svg", width: laid.width || 10, height: laid.height || 10,
  });
  for (const h of laid.columns || []) {
    if (!h.count) continue;
    const t = svgEl("text", { x: h.x, y: 18, fill: "#555", "font-weight": "bold" });
    t.textContent = `${h.title} (${h.count})`;
    svg.appendChild(t);
  }
  for (const e of laid.edges || []) {
    svg.appendChild(titled(svgEl("path", {
      class: "nbtrack-lineage-edge", d: edgePath(e), fill: "none", stroke: "#999",
      "stroke-width": 1.2,
    }), e.kind));
  }
  for (const b of laid.boxes || []) {
    const [fill, stroke] = COLOURS[b.kind] || COLOURS.more;
    const g = svgEl("g", { class: "nbtrack-lineage-node" });
    g.dataset.id = b.id;
    g.dataset.kind = b.kind;
    if (b.id === selected) g.classList.add("nbtrack-selected");
    const hit = b.id === selected || b.focus;
    g.appendChild(titled(svgEl("rect", {
      x: b.x, y: b.y, width: b.w, height: b.h, rx: 5, fill,
      stroke: b.id === selected ? "#d62728" : stroke, "stroke-width": hit ? 2.5 : 1,
    }), b.title));
    const label = svgEl("text", { x: b.x + 8, y: b.y + b.h / 2 + 4 });
    label.textContent = b.label;
    g.appendChild(label);
    if (b.kind !== "more") {
      g.style.cursor = "pointer";
      g.addEventListener("click", () => {
        model.set("selected", b.id);
        model.set("clicks", (model.get("clicks") || 0) + 1);
        model.save_changes();
      });
    }
    svg.appendChild(g);
  }
  box.appendChild(svg);
  el.appendChild(box);
}

export default {
  render({ model, el }) {
    const redraw = () => draw(model, el);
    redraw();
    model.on("change:layout", redraw);
    model.on("change:selected", redraw);
  },
};
