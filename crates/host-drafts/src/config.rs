//! `wasi:config/store@0.2.0-draft-2024-09-27`: the draft Spin serves its
//! variables through (wasmtime-wasi-config implements `@0.2.0-rc.1` instead).

use std::collections::BTreeMap;

use wasmtime::component::{HasData, Linker};

use self::bindings::wasi::config::store;

/// Host bindings of the draft, generated from the WIT the component vendors.
mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit/deps/config-0.2.0-draft-2024-09-27",
        world: "wasi:config/imports",
        imports: { default: async | trappable },
    });
}

/// The values a component can read, e.g. Spin variables.
pub struct ConfigView<'a> {
    pub values: &'a BTreeMap<String, String>,
}

/// Marker for `add_to_linker`: the data of the config interface is a [`ConfigView`].
pub struct WasiConfig;

impl HasData for WasiConfig {
    type Data<'a> = ConfigView<'a>;
}

/// Links `wasi:config/store` into `linker`; `view` gives each call the values.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    view: fn(&mut T) -> ConfigView<'_>,
) -> wasmtime::Result<()> {
    store::add_to_linker::<T, WasiConfig>(linker, view)
}

impl store::Host for ConfigView<'_> {
    async fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, store::Error>> {
        Ok(Ok(self.values.get(&key).cloned()))
    }

    async fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, store::Error>> {
        Ok(Ok(self
            .values
            .iter()
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::Host;

    #[tokio::test]
    async fn reads_one_value_or_all() {
        let values = BTreeMap::from([("origin".to_owned(), "https://a.example".to_owned())]);
        let mut view = ConfigView { values: &values };
        assert_eq!(
            view.get("origin".into()).await.unwrap().unwrap().as_deref(),
            Some("https://a.example")
        );
        assert_eq!(view.get("missing".into()).await.unwrap().unwrap(), None);
        assert_eq!(view.get_all().await.unwrap().unwrap().len(), 1);
    }
}
