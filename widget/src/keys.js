// Keyboard movement inside a list of buttons (the console's conversation list and its
// filter tabs): arrow keys go to the next / previous one, Home and End to the first / last.
export function arrowNav(container, selector, vertical) {
  const next = vertical ? "ArrowDown" : "ArrowRight", prev = vertical ? "ArrowUp" : "ArrowLeft";
  container.addEventListener("keydown", (e) => {
    if (![next, prev, "Home", "End"].includes(e.key)) return;
    const items = [...container.querySelectorAll(selector)];
    const at = items.indexOf(e.target.closest(selector));
    if (at < 0 || !items.length) return;
    e.preventDefault();
    const to = e.key === "Home" ? 0 : e.key === "End" ? items.length - 1 : (at + (e.key === next ? 1 : -1) + items.length) % items.length;
    items[to].focus();
  });
}
