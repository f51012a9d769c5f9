// A customer's tracking page, kept up to date without a reload: the state arrives over the
// page's socket (/ws/track/<token>/), or by polling its JSON when the socket cannot be held.
// Everything shown came from a shop, a driver or a customer: it only ever reaches the page
// as text (textContent; a tooltip built from an element), never as a string of HTML.
(function () {
  "use strict";
  const root = document.getElementById("track");
  if (!root) return;
  const pollMs = Number(root.dataset.pollS || "5") * 1000;
  let state = JSON.parse(document.getElementById("tracking-state").textContent);
  let stateReceivedAt = Date.now();
  let map = null, driverMarker = null, dropoffMarker = null, routeLine = null, framed = false;

  function field(name) { return root.querySelector(`[data-field="${name}"]`); }
  function setText(name, text) { const element = field(name); if (element) element.textContent = text || ""; }
  function show(id, isShown) { document.getElementById(id).hidden = !isShown; }
  function clock(iso) { return iso ? new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) : ""; }

  function renderSteps() {
    const list = document.getElementById("steps");
    list.replaceChildren(...state.steps.map((step) => {
      const item = document.createElement("li");
      if (step.is_done) item.classList.add("done");
      if (step.is_current) item.classList.add("current");
      const label = document.createElement("span");
      label.className = "label";
      label.textContent = step.label;
      const time = document.createElement("time");
      if (step.at) { time.dateTime = step.at; time.textContent = clock(step.at); }
      item.append(label, time);
      return item;
    }));
  }

  function renderEta() {
    const eta = document.getElementById("eta");
    if (!state.eta || state.is_ended) { eta.hidden = true; return; }
    const sure = document.createElement("span");
    sure.className = "sure";
    sure.textContent = state.eta.confidence_words || "";
    eta.replaceChildren(document.createTextNode(`Arriving ${clock(state.eta.earliest)}–${clock(state.eta.latest)}`), sure);
    eta.hidden = false;
  }

  function proofWords(proof) {
    if (!proof) return "";
    const taken = [proof.has_photo ? "a photo at the door" : "", proof.has_signature ? "your signature" : ""].filter(Boolean);
    return taken.length ? `Proof of delivery: ${taken.join(" and ")}.` : "";
  }

  function renderOutcome() {
    const outcome = state.outcome;
    show("outcome", Boolean(outcome));
    if (!outcome) return;
    setText("outcome-words", outcome.words);
    setText("outcome-at", outcome.at ? `at ${clock(outcome.at)}` : "");
    setText("outcome-reason", outcome.reason);
    setText("outcome-proof", proofWords(outcome.proof));
  }

  function positionAgeS() {
    const position = state.position;
    return position && !position.is_stale ? position.age_s + (Date.now() - stateReceivedAt) / 1000 : Infinity;
  }

  function textTooltip(text) {
    const element = document.createElement("span");
    element.textContent = text;
    return element;
  }

  function ensureMap() {
    if (map || typeof L === "undefined") return map;
    const element = document.getElementById("map");
    element.hidden = false;
    map = L.map(element, { zoomControl: false, attributionControl: true, maxZoom: 17, zoomAnimation: false, fadeAnimation: false });
    const tiles = JSON.parse(document.getElementById("tiles-url").textContent);
    if (tiles) {
      // The attribution is the operator's setting (it may hold an entity such as &copy;), not outside data.
      L.tileLayer(tiles, { maxZoom: 19, attribution: JSON.parse(document.getElementById("tiles-attribution").textContent) }).addTo(map);
    }
    return map;
  }

  function renderMap() {
    const dropoff = state.dropoff && state.dropoff.point;
    const position = state.position;
    const isFresh = Boolean(position && !position.is_stale && positionAgeS() <= state.stale_after_s);
    show("position-note", Boolean(position) && !isFresh && !state.is_ended);
    if (!isFresh && driverMarker) { driverMarker.remove(); driverMarker = null; }
    if (routeLine && (!isFresh || !dropoff)) { routeLine.remove(); routeLine = null; }
    if (state.is_ended || (!isFresh && !dropoff)) {
      if (map) { document.getElementById("map").hidden = true; }
      show("legend", false);
      root.dataset.driverShown = "no";
      root.dataset.driverPosition = "";
      return;
    }
    if (!ensureMap()) return;
    const mapElement = document.getElementById("map");
    if (mapElement.hidden) { mapElement.hidden = false; map.invalidateSize(); }
    const points = [];
    if (dropoff) {
      const at = [dropoff.lat, dropoff.lon];
      if (!dropoffMarker) dropoffMarker = L.circleMarker(at, { radius: 8, color: "#1d2733", fillOpacity: 0.9 }).bindTooltip(textTooltip("Drop-off")).addTo(map);
      dropoffMarker.setLatLng(at);
      points.push(at);
    }
    if (isFresh) {
      const at = [position.lat, position.lon];
      if (!driverMarker) driverMarker = L.circleMarker(at, { radius: 9, color: "#0b57d0", fillOpacity: 0.9 }).bindTooltip(textTooltip("Your driver")).addTo(map);
      driverMarker.setLatLng(at);
      points.push(at);
      if (dropoff) {
        const line = [at, [dropoff.lat, dropoff.lon]];
        if (!routeLine) routeLine = L.polyline(line, { color: "#0b57d0", weight: 3, dashArray: "6 6" }).addTo(map);
        routeLine.setLatLngs(line);
      }
    }
    show("legend", true);
    // Framed once, and again whenever a marker would leave the view (the driver drove out of it).
    const isOutOfView = framed && points.some((point) => !map.getBounds().pad(-0.1).contains(point));
    if (points.length && (!framed || isOutOfView)) {
      if (points.length > 1) map.fitBounds(points, { padding: [30, 30], animate: false }); else map.setView(points[0], 15, { animate: false });
      framed = true;
    }
    root.dataset.driverShown = isFresh ? "yes" : "no";
    root.dataset.driverPosition = isFresh ? `${position.lat},${position.lon}` : "";
  }

  function render() {
    setText("shop", state.shop);
    setText("code", state.code);
    renderSteps();
    renderEta();
    renderOutcome();
    show("headline", Boolean((state.eta && !state.is_ended) || state.outcome));
    show("handover", Boolean(state.handover_code));
    setText("handover-code", state.handover_code);
    show("driver", Boolean(state.driver));
    if (state.driver) { setText("driver-name", state.driver.first_name); setText("driver-vehicle", (state.driver.vehicle || "").toLowerCase()); }
    show("street", Boolean(state.dropoff && state.dropoff.street));
    setText("street", state.dropoff ? state.dropoff.street : "");
    renderMap();
    root.dataset.status = state.status;
  }

  function stateReplace(next) { state = next; stateReceivedAt = Date.now(); render(); }
  function positionReplace(position, eta) {
    state = Object.assign({}, state, { position: position }, eta ? { eta: eta } : {});
    stateReceivedAt = Date.now();
    render();
  }

  // --- Live updates: the socket, else polling ------------------------------------------------
  let pollTimer = null;
  function connectionNote(text) { const note = document.getElementById("connection"); note.textContent = text; note.hidden = !text; }

  async function poll() {
    try {
      const response = await fetch(root.dataset.stateUrl, { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.status === 404 || response.status === 410) { window.location.reload(); return; }
      if (response.ok) { stateReplace(await response.json()); connectionNote(""); }
    } catch (error) {
      connectionNote("Reconnecting…");
    }
  }

  function pollingStart() {
    if (pollTimer === null) pollTimer = setInterval(poll, pollMs);
  }

  function socketOpen() {
    let socket;
    try {
      const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      socket = new WebSocket(scheme + window.location.host + root.dataset.socketPath);
    } catch (error) {  // no WebSocket in this browser, or one a proxy or policy refuses outright
      root.dataset.live = "polling";
      pollingStart();
      return;
    }
    socket.addEventListener("open", () => {
      if (pollTimer !== null) { clearInterval(pollTimer); pollTimer = null; }
      connectionNote("");
      root.dataset.live = "socket";
    });
    socket.addEventListener("message", (message) => {
      const frame = JSON.parse(message.data);
      if (frame.type === "state") stateReplace(frame.state);
      else if (frame.type === "position") positionReplace(frame.position, frame.eta);
    });
    socket.addEventListener("close", (event) => {
      root.dataset.live = "polling";
      if (event.code === 4404 || event.code === 4410) { window.location.reload(); return; }
      pollingStart();
      setTimeout(socketOpen, 30000);  // the socket is tried again; polling covers the gap
    });
  }

  render();
  socketOpen();
  // A position ages on the page too: hidden once older than the stale limit, with a note.
  setInterval(renderMap, 5000);
})();
