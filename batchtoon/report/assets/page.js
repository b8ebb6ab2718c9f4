"use strict";
// Draws the gallery from the index in #gallery-data and the data files it names, loaded as
// they are shown (their format: batchtoon/report/pack.py). Every name goes into the page
// through textContent or a property: never parsed as HTML.
(() => {
  const data = JSON.parse(document.getElementById("gallery-data").textContent);
  const STATES = ["done", "failed", "refused", "pending"];
  const DONE = 0;
  const NOT_ASKED = -1;
  const PAGE_SIZE = 40; // cards drawn at once: 160 thumbnails at most, loaded lazily
  const LIST_MAX = 300; // members listed under one kind of problem
  const KEEP = 8; // data files kept loaded (the least recently used one goes first)
  const files = data.files;
  const view = { column: -1, state: -1, query: "", page: 0 };
  let found = null; // with a search: per data file, its cards that pass the filters
  let generation = 0; // a draw or a search started later makes an earlier one stop

  // The data files: loaded by a script element each (a page opened from disk may fetch nothing else),
  // which hands its cards to batchtoonData; each card knows its file (`card.file`).
  const loaded = new Map(); // n -> promise of the file's {dirs, reasons, cards}
  const arriving = new Map(); // n -> [resolve, reject] while its script loads
  window.batchtoonData = (n, file) => {
    file.cards.forEach((card) => (card.file = file));
    const waiting = arriving.get(n);
    arriving.delete(n);
    if (waiting) waiting[0](file);
  };
  function load(n) {
    let file = loaded.get(n);
    if (file) {
      loaded.delete(n); // most recently used: last
    } else {
      file = new Promise((resolve, reject) => arriving.set(n, [resolve, reject]));
      const script = el("script");
      script.src = files.dir + n + ".js";
      script.addEventListener("load", () => script.remove());
      script.addEventListener("error", () => {
        script.remove();
        loaded.delete(n);
        const waiting = arriving.get(n);
        arriving.delete(n);
        if (waiting) waiting[1](new Error(`${files.dir}${n}.js could not be read`));
      });
      document.head.append(script);
    }
    loaded.set(n, file);
    while (loaded.size > KEEP) loaded.delete(loaded.keys().next().value);
    return file;
  }

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

  // A card: [name, dir, original, thumb, outdir, outprefix, cells, view]; its folders and
  // reasons are its data file's.
  const dirs = (card) => card.file.dirs;
  const sourcePath = (card) => dirs(card)[card[1]] + card[0];
  const originalFile = (card) => (card[2] === 0 ? "" : card[2][1] === 0 ? card[0] : card[2][1]);
  const viewLink = (card) => (card[7] ? dirs(card)[card[7][0]] + card[7][1] : "");
  const originalLink = (card) =>
    viewLink(card) || (card[2] === 0 ? "" : dirs(card)[card[2][0]] + originalFile(card));
  const resultPrefix = (card) => {
    const file = originalFile(card);
    const rest = card[5] === 0 ? file.slice(0, file.lastIndexOf(".") + 1) : card[5];
    return dirs(card)[card[4]] + rest;
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
      const detail = card.file.reasons[cell[1]][0];
      return figure({ state: name, label, empty: name, badge: name, detail });
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

  function passes(card) {
    if (view.query && !sourcePath(card).toLowerCase().includes(view.query)) return false;
    return view.state < 0 || columns().some((k) => stateOf(card[6][k]) === view.state);
  }

  // How many cards of data file n pass the filters: from the index, or the search's count.
  function passing(n) {
    if (found) return found[n];
    return view.state < 0 ? files.sizes[n] : files.passes[n][(view.column + 1) * 4 + view.state];
  }

  async function refilter() {
    const mine = ++generation;
    found = null;
    view.page = 0;
    if (view.query) {
      const counts = [];
      for (let n = 0; n < files.sizes.length; n++) {
        byId("showing").textContent = `Searching… ${n} of ${files.sizes.length} parts`;
        const file = await load(n);
        if (mine !== generation) return;
        counts.push(file.cards.filter(passes).length);
      }
      found = counts;
    }
    await draw(mine);
  }

  // The cards that pass, from the first-th on (at most PAGE_SIZE): only the files they are in
  // are loaded.
  async function matching(first, mine) {
    const shown = [];
    let before = 0;
    for (let n = 0; n < files.sizes.length && shown.length < PAGE_SIZE; n++) {
      const count = passing(n);
      if (before + count > first) {
        const file = await load(n);
        if (mine !== generation) return null;
        const cards = file.cards.filter(passes).slice(Math.max(0, first - before));
        shown.push(...cards.slice(0, PAGE_SIZE - shown.length));
      }
      before += count;
    }
    return shown;
  }

  async function draw(mine = ++generation) {
    let total = 0;
    for (let n = 0; n < files.sizes.length; n++) total += passing(n);
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    view.page = Math.min(Math.max(view.page, 0), pages - 1);
    const first = view.page * PAGE_SIZE;
    let shown;
    try {
      shown = await matching(first, mine);
    } catch (error) {
      const why = `This page's data is missing (${error.message}): write the gallery again.`;
      byId("showing").textContent = why;
      return;
    }
    if (shown === null) return;
    const cards = byId("cards");
    cards.style.setProperty("--cells", String(columns().length + 1)); // a card's width
    cards.replaceChildren(...shown.map(cardNode));
    byId("showing").textContent = shown.length
      ? `Showing ${first + 1}–${first + shown.length} of ${total.toLocaleString()} photos`
      : "No photo matches these filters.";
    byId("page").textContent = `Page ${view.page + 1} of ${pages}`;
    byId("prev").disabled = view.page === 0;
    byId("next").disabled = view.page >= pages - 1;
    byId("pager").hidden = pages === 1;
  }

  async function turn(step) {
    view.page += step;
    await draw();
    byId("showing").scrollIntoView({ block: "start" });
  }

  function drawStates() {
    const counts = [0, 1, 2, 3].map((state) =>
      columns().reduce((sum, k) => sum + data.tally[k][state], 0),
    );
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

  // The photos and styles of one kind of problem, the first LIST_MAX of them.
  async function members(kind) {
    const list = el("ul", "members");
    const group = data.kinds[kind][3];
    const total = data.kinds[kind][2];
    let listed = 0;
    for (let n = 0; n < files.sizes.length && listed < Math.min(total, LIST_MAX); n++) {
      for (const card of (await load(n)).cards) {
        card[6].forEach((cell, k) => {
          if (stateOf(cell) <= DONE || card.file.reasons[cell[1]][1] !== group) return;
          if (++listed > LIST_MAX) return;
          const item = el("li");
          item.append(
            pathText("span", "path", sourcePath(card)),
            el("span", "style", data.styles[k][1]),
            el("span", "why", card.file.reasons[cell[1]][0]),
          );
          list.append(item);
        });
      }
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
      let listing = null;
      details.addEventListener("toggle", () => {
        if (!details.open || listing) return;
        listing = members(kind).then((list) => details.append(list));
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
  drawKinds();
  refilter().then(() => (document.body.dataset.drawn = String(performance.now())));
})();
