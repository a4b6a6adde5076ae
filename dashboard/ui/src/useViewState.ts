// The view state (range, time zone, theme) read from and written to the URL; the back button
// restores the previous range.
import { useCallback, useEffect, useState } from "react";
import { parseViewState, viewStateSearch, type ViewState } from "./urlState";

export function useViewState(allowedRanges: readonly string[] | undefined): [ViewState, (change: Partial<ViewState>) => void] {
  const [state, setState] = useState(() => parseViewState(window.location.search, allowedRanges));

  useEffect(() => {
    if (allowedRanges) setState(parseViewState(window.location.search, allowedRanges));
  }, [allowedRanges]);

  useEffect(() => {
    const onPop = () => setState(parseViewState(window.location.search, allowedRanges));
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, [allowedRanges]);

  const update = useCallback((change: Partial<ViewState>) => {
    setState((previous) => {
      const next = { ...previous, ...change };
      const search = viewStateSearch(next, window.location.search);
      if (search !== window.location.search) {
        const url = `${window.location.pathname}${search}${window.location.hash}`;
        // A new range is a new view (back returns to the old one); look changes just replace.
        if (next.range !== previous.range) window.history.pushState(null, "", url);
        else window.history.replaceState(null, "", url);
      }
      return next;
    });
  }, []);

  return [state, update];
}
