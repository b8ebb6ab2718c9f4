"use strict";
// Draws the gallery from the JSON in #gallery-data (its format: batchtoon/report/pack.py).
// Every name goes into the page through textContent or a property: never parsed as HTML.
(() => {
  const data = JSON.parse(document.getElementById("gallery-data").textContent);
  const STATES = ["done", "failed", "refused", "pending"];
  const DONE = 0;
  const NOT_ASKED = -1;
  const PAGE_SIZE = 40; // cards drawn at once: 160 thumbnails at most, loaded lazily
  const LIST_MAX = 300; // members listed under one kind of problem
  const view = { column: -1, state: -1, query: "", page: 0 };
  let matches = []; // indexes of the cards that pass the filters
  let haystack = null; // lower-cased source paths, made at the first search

  const byId = (id) => document.getElementById(id);

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Text that may break only after the characters `after` matches (a <wbr> each): a path
  // after each "/", never inside a name when avoidable; a photo's name also after "_" or "-".
  function breakable(tag, className, text, after) {
    const node = el(tag, className);
    text.split(after).forEach((part, k) => {
      if (k) node.append(el("wbr"));
      node.append(part);
    });
    return node;
  }
  const pathText = (tag, className, text) => breakable(tag, className, text, /(?<=\/)/);
  const nameText = (tag, className, text) => breakable(tag, className, text, /(?<=[_-])/);

  // A link's text: what is UTF-8 decoded, other bytes as \xNN, controls escaped as pack.py does.
  const CONTROL = /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
  const hex = (code, width) => code.toString(16).padStart(width, "0");
  const escaped = (text) =>
    text.replace(CONTROL, (c) => {
      const code = c.charCodeAt(0);
      return code < 0x100 ? "\\x" + hex(code, 2) : "\\u" + hex(code, 4);
    });
  const linkText = (href) =>
    escaped(
      href.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) => {
        try {
          return decodeURIComponent(run);
        } catch (error) {
          return run.replace(/%([0-9A-Fa-f]{2})/g, (_, byte) => "\\x" + byte.toLowerCase());
        }
      }),
    );

  // A card: [name, dir, original, thumb, outdir, outprefix, cells, view].
  const dirs = data.dirs;
  const sourcePath = (card) => dirs[card[1]] + card[0];
  const originalFile = (card) => (card[2] === 0 ? "" : card[2][1] === 0 ? card[0] : card[2][1]);
  const viewLink = (card) => (card[7] ? dirs[card[7][0]] + card[7][1] : "");
  const originalLink = (card) =>
    viewLink(card) || (card[2] === 0 ? "" : dirs[card[2][0]] + originalFile(card));
  const resultPrefix = (card) => {
    const file = originalFile(card);
    return dirs[card[4]] + (card[5] === 0 ? file.slice(0, file.lastIndexOf(".") + 1) : card[5]);
  };
  const stateOf = (cell) => (cell === 0 ? NOT_ASKED : typeof cell[0] === "string" ? DONE : cell[0]);
  const columns = () => (view.column < 0 ? data.styles.map((_, k) => k) : [view.column]);

  function image(name, alt) {
    const img = el("img");
    img.loading = "lazy";
    img.decoding = "async";
    img.alt = alt;
    img.addEventListener("error", () => img.replaceWith(el("span", "empty", "no preview")), {
      once: true,
    });
    img.src = data.thumbs + name + ".jpg";
    return img;
  }

  // One picture with its caption; `href` opens the full image, `thumb` may be "".
  function figure({ state, label, href = "", thumb = "", empty = "", badge = "", detail = "" }) {
    const node = el("figure", "cell " + state);
    const box = el(href ? "a" : "div", "thumb");
    if (href) {
      box.href = href;
      box.target = "_blank";
      box.rel = "noopener";
      box.title = "Open the full image";
    }
    box.append(thumb ? image(thumb, label) : el("span", "empty", empty));
    const caption = el("figcaption");
    caption.append(el("span", "label", label));
    if (badge) caption.append(el("span", "badge", badge));
    if (detail) {
      const text = pathText(href ? "a" : "span", "detail", detail);
      if (href) Object.assign(text, { href, target: "_blank", rel: "noopener" });
      caption.append(text);
    }
    node.append(box, caption);
    return node;
  }

  function resultFigure(card, column) {
    const cell = card[6][column];
    const state = stateOf(cell);
    const label = data.styles[column][1];
    if (state === NOT_ASKED) {
      return figure({ state: "none", label, empty: "not asked", detail: "not asked for this photo" });
    }
    if (state !== DONE) {
      const name = STATES[state];
      return figure({ state: name, label, empty: name, badge: name, detail: data.reasons[cell[1]][0] });
    }
    const href = resultPrefix(card) + cell[0];
    return figure({ state: "done", label, href, thumb: cell[1] || "", empty: "no preview",
      badge: "done", detail: linkText(href) });
  }

  // The cells of `cards` in the columns shown, by state.
  function countStates(cards) {
    const counts = [0, 0, 0, 0];
    for (const card of cards) {
      for (const k of columns()) {
        const state = stateOf(card[6][k]);
        if (state >= 0) counts[state] += 1;
      }
    }
    return counts;
  }

  // "2 done · 1 failed"
  function tally(card) {
    const words = countStates([card]).flatMap((n, state) => (n ? [`${n} ${STATES[state]}`] : []));
    return el("p", "tally", words.join(" · "));
  }

  function cardNode(card) {
    const node = el("article", "card");
    const head = el("header", "card-head");
    head.append(nameText("h2", "name", card[0]), pathText("p", "path", sourcePath(card)), tally(card));
    const row = el("div", "row");
    const href = originalLink(card);
    row.append(figure({ state: "original", label: "Original", href, thumb: card[3],
      empty: href ? "no preview" : "file not found" }));
    for (const column of columns()) row.append(resultFigure(card, column));
    node.append(head, row);
    return node;
  }

  function passes(card, index) {
    if (view.query && !haystack[index].includes(view.query)) return false;
    return view.state < 0 || columns().some((k) => stateOf(card[6][k]) === view.state);
  }

  function refilter() {
    if (view.query && haystack === null) {
      haystack = data.cards.map((card) => sourcePath(card).toLowerCase());
    }
    matches = [];
    data.cards.forEach((card, index) => passes(card, index) && matches.push(index));
    view.page = 0;
    draw();
  }

  function draw() {
    const pages = Math.max(1, Math.ceil(matches.length / PAGE_SIZE));
    view.page = Math.min(Math.max(view.page, 0), pages - 1);
    const first = view.page * PAGE_SIZE;
    const shown = matches.slice(first, first + PAGE_SIZE);
    const cards = byId("cards");
    cards.style.setProperty("--cells", String(columns().length + 1)); // a card's width
    cards.replaceChildren(...shown.map((index) => cardNode(data.cards[index])));
    const total = matches.length.toLocaleString();
    byId("showing").textContent = shown.length
      ? `Showing ${first + 1}–${first + shown.length} of ${total} photos`
      : "No photo matches these filters.";
    byId("page").textContent = `Page ${view.page + 1} of ${pages}`;
    byId("prev").disabled = view.page === 0;
    byId("next").disabled = view.page >= pages - 1;
    byId("pager").hidden = pages === 1;
  }

  function turn(step) {
    view.page += step;
    draw();
    byId("showing").scrollIntoView({ block: "start" });
  }

  function drawStates() {
    const counts = countStates(data.cards);
    const buttons = [-1, 0, 1, 2, 3].map((state) => {
      const text = state < 0 ? "All" : `${STATES[state]} ${counts[state].toLocaleString()}`;
      const button = el("button", "chip " + (state < 0 ? "all" : STATES[state]), text);
      button.type = "button";
      button.dataset.state = String(state);
      button.setAttribute("aria-pressed", String(view.state === state));
      button.addEventListener("click", () => {
        view.state = state;
        drawStates();
        refilter();
      });
      return button;
    });
    byId("states").replaceChildren(...buttons);
  }

  function drawHeader() {
    byId("title").textContent = data.title;
    const when = [data.run, `page made ${data.made}`];
    byId("meta").textContent = when.filter(Boolean).join(" · ");
    const tiles = [...data.counts.map((row) => [row, "tile"]), ...data.cost.map((row) => [row, "tile cost"])];
    byId("tiles").replaceChildren(
      ...tiles.map(([[label, number], className]) => {
        const tile = el("div", className);
        tile.append(el("dt", "", label), el("dd", "", number.toLocaleString()));
        return tile;
      }),
    );
    byId("styles").replaceChildren(
      ...data.styles.map(([index, name]) => el("li", "", `${index} · ${name}`)),
    );
  }

  function members(kind) {
    const list = el("ul", "members");
    let total = 0;
    for (const card of data.cards) {
      card[6].forEach((cell, k) => {
        if (stateOf(cell) <= DONE || data.reasons[cell[1]][1] !== kind) return;
        total += 1;
        if (total > LIST_MAX) return;
        const item = el("li");
        item.append(
          pathText("span", "path", sourcePath(card)),
          el("span", "style", data.styles[k][1]),
          el("span", "why", data.reasons[cell[1]][0]),
        );
        list.append(item);
      });
    }
    if (total > LIST_MAX) {
      list.append(el("li", "more", `and ${total - LIST_MAX} more: filter by state to see all`));
    }
    return list;
  }

  function drawKinds() {
    byId("problems").hidden = data.kinds.length === 0;
    const nodes = data.kinds.map(([state, label, cells], kind) => {
      const details = el("details", "kind " + state);
      const summary = el("summary");
      summary.append(el("span", "badge", state), el("span", "label", label),
        el("span", "count", cells.toLocaleString()));
      details.append(summary);
      details.addEventListener("toggle", () => {
        if (details.open && details.childElementCount === 1) details.append(members(kind));
      });
      return details;
    });
    byId("kinds").replaceChildren(...nodes);
  }

  function drawControls() {
    const select = byId("style");
    const options = [[-1, "All styles"], ...data.styles.map(([_, name], k) => [k, name])];
    select.replaceChildren(
      ...options.map(([value, name]) => Object.assign(el("option", "", name), { value })),
    );
    select.addEventListener("change", () => {
      view.column = Number(select.value);
      drawStates();
      refilter();
    });
    let timer = 0;
    byId("search").addEventListener("input", (event) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        view.query = event.target.value.trim().toLowerCase();
        refilter();
      }, 120);
    });
    byId("prev").addEventListener("click", () => turn(-1));
    byId("next").addEventListener("click", () => turn(1));
    drawStates();
  }

  drawHeader();
  drawControls();
  refilter(); // the first screen first: the problems list below it is cheap but not urgent
  drawKinds();
  document.body.dataset.drawn = String(performance.now());
})();
