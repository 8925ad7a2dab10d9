// Focus in a virtualized feed: the row may not exist until the list has scrolled to it.
export function focusRow(scroller, index, tries = 6) {
  if (!scroller) return;
  const row = scroller.querySelector(`[data-index="${index}"]`);
  if (row) {
    row.focus({ preventScroll: true });
    return;
  }
  if (tries > 0) requestAnimationFrame(() => focusRow(scroller, index, tries - 1));
}
