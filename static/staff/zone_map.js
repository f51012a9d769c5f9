// The zone page's map: the zone's area, its waiting orders and its drivers, redrawn every 2 s.
// Order codes and driver names come from shops and drivers: they reach the page only as text
// (a tooltip built from an element whose textContent is set, never a string of HTML).
(function () {
  "use strict";
  const mapElement = document.getElementById("map");
  const dataUrl = mapElement.dataset.url;
  const map = L.map(mapElement, { zoomControl: true });
  const tiles = JSON.parse(document.getElementById("tiles-url").textContent);
  if (tiles) {
    // The attribution is the operator's setting (it may hold an entity such as &copy;), not outside data.
    L.tileLayer(tiles, { maxZoom: 19, attribution: JSON.parse(document.getElementById("tiles-attribution").textContent) }).addTo(map);
  }
  const layer = L.layerGroup().addTo(map);
  const colours = { available: "#1e8e3e", busy: "#f29900", on_break: "#80868b", offline: "#80868b" };
  let framed = false;

  function textTooltip(text) {
    const element = document.createElement("span");
    element.textContent = text;
    return element;
  }

  async function draw() {
    const response = await fetch(dataUrl, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const data = await response.json();
    layer.clearLayers();
    const bounds = [];
    if (data.area) {
      const area = L.geoJSON(data.area, { style: { color: "#264b5d", weight: 2, fillOpacity: 0.05 } }).addTo(layer);
      bounds.push(area.getBounds());
    }
    for (const o of data.orders) {
      L.circleMarker([o.lat, o.lon], { radius: 8, color: "#d93025", fillOpacity: 0.8 })
        .bindTooltip(textTooltip(`${o.code}: waiting ${Math.round(o.waiting_s / 60)} min`))
        .addTo(layer);
      bounds.push(L.latLngBounds([[o.lat, o.lon], [o.lat, o.lon]]));
    }
    for (const d of data.drivers) {
      L.circleMarker([d.lat, d.lon], { radius: 6, color: colours[d.availability] || "#80868b", fillOpacity: 0.9 })
        .bindTooltip(textTooltip(`${d.name} (${d.availability})`))
        .addTo(layer);
      bounds.push(L.latLngBounds([[d.lat, d.lon], [d.lat, d.lon]]));
    }
    if (!framed) {
      if (bounds.length) {
        map.fitBounds(bounds.reduce((a, b) => a.extend(b)), { padding: [20, 20] });
      } else {
        map.setView([52.52, 13.4], 11);
      }
      framed = true;
    }
    mapElement.dataset.markers = String(data.orders.length + data.drivers.length);
  }

  draw();
  setInterval(draw, 2000);
})();
