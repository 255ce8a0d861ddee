// Live events: one WebSocket per tab on /ws/events/ (docs/events.md).
// Pages subscribe with  window.Live.on("backtest.progress", (payload, event) => ...)
// Every event is {type, time, sequence, payload}. The socket reconnects with capped exponential
// backoff and jitter, passing the last sequence it saw (?after=N): the server replays what was
// missed, in order, or sends "live.reset" when it no longer has it. Pages re-read what they show
// on "live.reset", which is also dispatched once when the first connection opens (the page was
// rendered before the socket existed). "live.open" fires on every (re)connect.
(function () {
  "use strict";
  const handlers = {};
  const indicator = document.getElementById("live-indicator");
  const BASE_DELAY = 500;
  const MAX_DELAY = 30000;
  let socket = null;
  let retry = 0;
  let lastSequence = null; // the newest sequence number handled; null before the first connection

  function setState(state, label) {
    if (!indicator) return;
    indicator.className = "live live-" + state;
    indicator.querySelector(".live-label").textContent = label;
    indicator.title = "Live updates: " + label;
    indicator.dataset.state = state;
  }

  // The connection's state events are kept: a script that subscribes after they were sent (it
  // loaded after the socket opened, e.g. behind a large library) still gets them, once.
  const STICKY = ["connected", "live.open", "live.reset"];
  const sticky = {};

  function dispatch(event) {
    if (STICKY.includes(event.type)) sticky[event.type] = event;
    (handlers[event.type] || []).forEach((fn) => fn(event.payload, event));
    (handlers["*"] || []).forEach((fn) => fn(event.payload, event));
  }

  function local(type, payload) {
    return { type, time: new Date().toISOString(), sequence: null, payload: payload || {} };
  }

  function handle(event) {
    if (event.type === "connected") {
      const resumed = lastSequence !== null;
      if (!resumed) lastSequence = event.payload.sequence;
      dispatch(event);
      dispatch(local("live.open", { resumed }));
      if (!resumed) dispatch(local("live.reset", { reason: "first connection", sequence: lastSequence }));
      return;
    }
    if (event.type === "live.reset") {
      lastSequence = event.payload.sequence;
      dispatch(event);
      return;
    }
    if (event.sequence !== null && event.sequence !== undefined) {
      if (lastSequence !== null && event.sequence <= lastSequence) return; // seen already
      lastSequence = event.sequence;
    }
    if (event.type === "heartbeat" && indicator) indicator.dataset.lastHeartbeat = event.payload.server_time;
    dispatch(event);
  }

  // Full jitter: a server restart does not bring every tab back in the same instant.
  function delay() {
    const cap = Math.min(MAX_DELAY, BASE_DELAY * 2 ** retry);
    return cap / 2 + Math.random() * cap / 2;
  }

  function connect() {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const query = lastSequence === null ? "" : "?after=" + encodeURIComponent(lastSequence);
    try {
      socket = new WebSocket(scheme + "://" + location.host + "/ws/events/" + query);
    } catch (e) {
      // Refused before it started (a blocked address, too many sockets): retry like a drop.
      socket = null;
      setState("off", "reconnecting");
      const wait = delay();
      retry = Math.min(retry + 1, 10);
      setTimeout(connect, wait);
      return;
    }
    socket.onopen = () => { retry = 0; setState("on", "live"); };
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch (e) { return; }
      if (event && typeof event.type === "string") handle(event);
    };
    socket.onclose = (event) => {
      if (event.code === 4401) { setState("off", "signed out"); return; }
      setState("off", "reconnecting");
      const wait = delay();
      retry = Math.min(retry + 1, 10);
      setTimeout(connect, wait);
    };
  }

  // Keep idle proxies from closing the socket.
  setInterval(() => { if (socket && socket.readyState === 1) socket.send('{"type":"ping"}'); }, 25000);

  window.Live = {
    on(type, fn) {
      (handlers[type] = handlers[type] || []).push(fn);
      const seen = sticky[type];
      if (seen) queueMicrotask(() => fn(seen.payload, seen));
    },
    get connected() { return !!socket && socket.readyState === 1; },
    get sequence() { return lastSequence; },
    // Tests and debugging: drop the socket as a network failure would (it reconnects and resumes).
    drop() { if (socket) socket.close(4000, "dropped"); },
  };
  connect();
})();
