//! `/api/brands`: an account's brand kits (name, brand colour, background colour, logo), saved and reused
//! across broadcasts. A broadcast takes one on through its scene (`scene.brand`, a copy the studio puts there
//! when the host picks a brand), so the program never reads this table while live.

use std::collections::HashMap;

use axum::extract::{FromRequest as _, Request, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth::check_name;
use super::extract::{ApiJson, PathParams};
use crate::auth::{CurrentUser, path_uuid};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::{Brand, BrandFields};

type Json<T> = axum::Json<T>;

/// Brand kits one account may keep.
pub const MAX_BRANDS: usize = 50;
/// A brand's name, in characters.
pub const NAME_MAX: usize = 60;

/// A brand kit as the studio sends it (every field, on create and on replace).
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct BrandInput {
    /// 1–60 characters.
    #[schema(
        min_length = 1,
        max_length = 60,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    pub name: String,
    /// The brand colour, `#rrggbb`: banners, lower thirds, the ticker and featured comments take it.
    #[schema(pattern = r"^#[0-9a-fA-F]{6}$")]
    pub color: String,
    /// `#rrggbb` behind the tiles, or none for the default (black).
    #[serde(default)]
    #[schema(pattern = r"^#[0-9a-fA-F]{6}$")]
    pub background: Option<String>,
    /// An `/api/uploads/<sha256>` URL from `POST /api/upload`, shown as the logo when the brand is applied.
    #[serde(default)]
    #[schema(pattern = r"^/api/uploads/[0-9a-f]{64}$")]
    pub logo_url: Option<String>,
    /// An `/api/uploads/<sha256>` URL of an image covering the canvas behind the tiles when the brand is applied.
    #[serde(default)]
    #[schema(pattern = r"^/api/uploads/[0-9a-f]{64}$")]
    pub background_image: Option<String>,
    /// The font of the brand's text overlays: `sans` (when absent), `serif` or `mono`.
    #[serde(default)]
    #[schema(pattern = "^(sans|serif|mono)$")]
    pub font: Option<String>,
}

/// `#rrggbb` (the only form a brand takes, so every consumer reads it the same way).
pub fn hex_colour(field: &str, value: &str) -> ApiResult<String> {
    // The scene's own reading of a brand colour, so a saved brand is always one a scene takes.
    if crate::scene::rgb(value).is_none() {
        return Err(ApiError::invalid(field, "must be a colour like #2563eb"));
    }
    Ok(value.to_ascii_lowercase())
}

impl BrandInput {
    fn check(self) -> ApiResult<BrandFields> {
        let name = check_name("name", &self.name, NAME_MAX)?;
        let color = hex_colour("color", &self.color)?;
        let background = self.background.as_deref().map(|b| hex_colour("background", b)).transpose()?;
        for (field, url) in [("logoUrl", &self.logo_url), ("backgroundImage", &self.background_image)] {
            if url.as_deref().is_some_and(|u| crate::uploads::sha_of_url(u).is_none()) {
                return Err(ApiError::invalid(field, "must be an /api/uploads/<sha256> URL from POST /api/upload"));
            }
        }
        if self.font.as_deref().is_some_and(|f| !crate::scene::FONTS.contains(&f)) {
            return Err(ApiError::invalid("font", "must be one of sans, serif, mono"));
        }
        Ok(BrandFields {
            name,
            color,
            background,
            logo_url: self.logo_url,
            background_image: self.background_image,
            font: self.font,
        })
    }
}

async fn own(state: &AppState, user: &CurrentUser, params: &HashMap<String, String>) -> ApiResult<Brand> {
    let id = path_uuid(params, "id")?;
    state.store.brand(id).await?.filter(|b| b.user_id == user.id).ok_or(ApiError::NotFound("brand"))
}

/// The caller's brand kits, oldest first.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct BrandList {
    pub items: Vec<Brand>,
}

#[utoipa::path(get, path = "/api/brands", tag = "brands",
    responses((status = 200, body = BrandList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(State(state): State<AppState>, user: CurrentUser) -> ApiResult<Json<BrandList>> {
    Ok(axum::Json(BrandList { items: state.store.brands(user.id).await? }))
}

#[utoipa::path(post, path = "/api/brands", tag = "brands", request_body = BrandInput,
    responses((status = 201, body = Brand), (status = 409, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    ApiJson(input): ApiJson<BrandInput>,
) -> ApiResult<(StatusCode, Json<Brand>)> {
    let fields = input.check()?;
    if state.store.brands(user.id).await?.len() >= MAX_BRANDS {
        return Err(ApiError::conflict("too_many_brands", format!("an account keeps at most {MAX_BRANDS} brands")));
    }
    Ok((StatusCode::CREATED, axum::Json(state.store.create_brand(user.id, &fields).await?)))
}

#[utoipa::path(put, path = "/api/brands/{id}", tag = "brands", params(("id" = uuid::Uuid, Path)),
    request_body = BrandInput,
    responses((status = 200, body = Brand), (status = 404, body = crate::error::ErrorBody),
        (status = 422, body = crate::error::ErrorBody)))]
pub async fn replace(
    State(state): State<AppState>,
    user: CurrentUser,
    PathParams(params): PathParams,
    req: Request,
) -> ApiResult<Json<Brand>> {
    // Whose brand it is before what the body says: someone else's brand is missing, whatever is sent.
    let brand = own(&state, &user, &params).await?;
    let ApiJson(input) = ApiJson::<BrandInput>::from_request(req, &state).await?;
    let fields = input.check()?;
    Ok(axum::Json(state.store.update_brand(brand.id, &fields).await?.ok_or(ApiError::NotFound("brand"))?))
}

#[utoipa::path(delete, path = "/api/brands/{id}", tag = "brands", params(("id" = uuid::Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    PathParams(params): PathParams,
) -> ApiResult<StatusCode> {
    let brand = own(&state, &user, &params).await?;
    state.store.delete_brand(brand.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
