// @tanstack/virtual-core for Preact: what @tanstack/react-virtual's useVirtualizer does, with
// Preact hooks. Rows are measured as they render (measureElement), so heights may vary.
import {
  Virtualizer,
  elementScroll,
  observeElementOffset,
  observeElementRect,
  useLayoutEffect,
  useReducer,
  useState,
} from "./deps.js";

/** A ref callback for rows that measures them after the commit, all at once: measuring each as
 * Preact attaches it would force a layout per row. */
export function useBatchedMeasure(virtualizer) {
  const [state] = useState(() => ({ nodes: [], ref: null }));
  state.ref =
    state.ref ||
    ((node) => {
      if (node) state.nodes.push(node);
    });
  useLayoutEffect(() => {
    const nodes = state.nodes;
    if (!nodes.length) return;
    state.nodes = [];
    for (const node of nodes) if (node.isConnected) virtualizer.measureElement(node);
  });
  return state.ref;
}

export function useVirtualizer(options) {
  const [, rerender] = useReducer((n) => n + 1, 0);
  const resolved = {
    observeElementRect,
    observeElementOffset,
    scrollToFn: elementScroll,
    ...options,
    onChange: (instance, sync) => {
      rerender();
      if (options.onChange) options.onChange(instance, sync);
    },
  };
  const [instance] = useState(() => new Virtualizer(resolved));
  instance.setOptions(resolved);
  useLayoutEffect(() => instance._didMount(), []);
  useLayoutEffect(() => instance._willUpdate());
  return instance;
}
