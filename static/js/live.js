// Live events: one WebSocket per tab on /ws/events/, re-connecting with backoff.
// Pages subscribe with  window.Live.on("backtest.progress", (data, event) => ...)
(function () {
  "use strict";
  const handlers = {};
  const indicator = document.getElementById("live-indicator");
  let socket = null;
  let retry = 0;

  function setState(state, label) {
    if (!indicator) return;
    indicator.className = "live live-" + state;
    indicator.querySelector(".live-label").textContent = label;
    indicator.title = "Live updates: " + label;
    indicator.dataset.state = state;
  }

  function dispatch(event) {
    (handlers[event.type] || []).forEach((fn) => fn(event.data, event));
    (handlers["*"] || []).forEach((fn) => fn(event.data, event));
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    socket = new WebSocket(scheme + "://" + location.host + "/ws/events/");
    // "live.open" on every (re)connect: events sent while the socket was down are lost, so a
    // page that shows changing state re-reads it then.
    socket.onopen = () => { retry = 0; setState("on", "live"); dispatch({ type: "live.open", data: {} }); };
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (event.type === "heartbeat" && indicator) indicator.dataset.lastHeartbeat = event.data.server_time;
      dispatch(event);
    };
    socket.onclose = (event) => {
      if (event.code === 4401) { setState("off", "signed out"); return; }
      setState("off", "reconnecting");
      retry = Math.min(retry + 1, 6);
      setTimeout(connect, 500 * 2 ** retry);
    };
  }

  // Keep idle proxies from closing the socket.
  setInterval(() => { if (socket && socket.readyState === 1) socket.send('{"type":"ping"}'); }, 25000);

  window.Live = {
    on(type, fn) { (handlers[type] = handlers[type] || []).push(fn); },
    get connected() { return !!socket && socket.readyState === 1; },
  };
  connect();
})();
